"""Attacks on erased models: the prompt attacks UnlearnDiff (OPTML-Group/Diffusion-MU-Attack) and P4D (joycenerd/P4D), the model
attacks ``revival`` (:mod:`~cadkit.attacks.revival`, data-free mask revival) and ``relearn``
(:mod:`~cadkit.attacks.relearn`), and plug-ins: every attack is an :class:`~cadkit.attacks.base.Attack`
found by name in :mod:`~cadkit.attacks.registry` (entry points ``cadkit.attacks``).

Entry points:

* :func:`attack_prompt` (one prompt and an :class:`AttackSetup`: pair, task, judge, options, seed -> :class:`AttackRecord`), :func:`asr_summary` (records -> pre-ASR, ASR, ...);
* :func:`model_pair`: the base adapter plus edit files (:class:`EditToggle`) or an erased denoiser
  (:class:`DenoiserSwap`);
* :class:`AttackOptions` (official defaults) and :func:`tiny_options` (the CPU preset of ``tiny``);
* :class:`AttackTask`, :func:`make_judge` (tiny judge / ImageNet ResNet50 / NudeNet 0.45);
* prompt files: :func:`load_attack_prompts`, :func:`filter_prompts`, :func:`tiny_attack_prompts`,
  :func:`write_attack_csv`;
* :mod:`~cadkit.attacks.tasks` (task names -> :class:`AttackTask`, judge, concept, prompt file) and
  :mod:`~cadkit.attacks.store` (one record folder per prompt, written once; what ``cadkit attack`` and
  ``cadkit bench attack`` resume from); :func:`options_for` (a model's registry preset).

Families: SD-1/2, SD-XL (one soft prompt drives both CLIP tables), SD-3 and FLUX (the CLIP streams are
optimised; T5 encodes the decoded text of the current tokens, without gradient).

Building blocks: :mod:`~cadkit.attacks.simplex` (projection, STE, nearest token),
:mod:`~cadkit.attacks.token_embeddings` (token tables and encoding from embeddings), :mod:`~cadkit.attacks.layout`
(where adversarial tokens go), :mod:`~cadkit.attacks.optimizers`, :mod:`~cadkit.attacks.official`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from cadkit.attacks.base import AttackSetup
from cadkit.attacks.judges import AttackTask, CallableJudge, Judge, NudityJudge, ObjectJudge, Verdict, make_judge
from cadkit.attacks.options import ATTACKS, AttackOptions, options_for, tiny_options
from cadkit.attacks.pair import DenoiserSwap, EditToggle, ModelPair, SameModel
from cadkit.attacks.prompt_files import (
    ATTACK_COLUMNS,
    filter_prompts,
    load_attack_prompts,
    tiny_attack_prompts,
    write_attack_csv,
    write_filtered,
)
from cadkit.attacks.records import AttackRecord, asr_summary, save_record
from cadkit.attacks.runner import attack_prompt
from cadkit.attacks.store import attack_and_save, done_record, item_dir, record_images, row_slug
from cadkit.attacks.tasks import resolve_task, task_concept, task_judge, task_names, task_prompt_file
from cadkit.errors import bad_arg

__all__ = [
    "ATTACKS", "ATTACK_COLUMNS", "AttackOptions", "AttackRecord", "AttackSetup", "AttackTask", "CallableJudge", "DenoiserSwap",
    "EditToggle", "Judge", "ModelPair", "NudityJudge", "ObjectJudge", "SameModel", "Verdict", "asr_summary",
    "attack_prompt", "filter_prompts", "load_attack_prompts", "make_judge", "model_pair", "save_record",
    "tiny_attack_prompts", "tiny_options", "write_attack_csv", "write_filtered", "options_for", "attack_and_save",
    "done_record", "item_dir", "record_images", "row_slug", "resolve_task", "task_concept", "task_judge", "task_names",
    "task_prompt_file",
]


def model_pair(
    adapter: Any,
    edits: Sequence[Any] | None = None,
    erased_denoiser: nn.Module | None = None,
    erased_state: Mapping[str, Tensor] | None = None,
) -> ModelPair:
    """Base = ``adapter`` as loaded; erased = with ``edits`` applied, or ``erased_denoiser``, or ``erased_state``.

    Exactly one of the three must be given (use :class:`SameModel` to attack an unedited model).
    """
    given = [x is not None for x in (edits, erased_denoiser, erased_state)]
    if sum(given) != 1:
        raise bad_arg("edits", "exactly one of edits, erased_denoiser, erased_state", f"{sum(given)} given")
    if edits is not None:
        return EditToggle(adapter, edits)
    if erased_denoiser is not None:
        return DenoiserSwap(adapter, erased_denoiser)
    assert erased_state is not None
    return DenoiserSwap.from_state(adapter, erased_state)
