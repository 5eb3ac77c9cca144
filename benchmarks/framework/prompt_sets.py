"""``--prompt-set names|paraphrases``: judge an erasure on prompts that name the concept, or on descriptions
that never name it.

Every erasure suite on a model with an embedded world that has paraphrases (``tiny``: see
:mod:`cadkit.tiny.paraphrases`) takes the option. The edits are made exactly as with names (each method's
own concept wording); only the *evaluation* prompts change: row ``j`` of a class becomes the class's
paraphrase ``j`` (cycling), with the row's seed unchanged, so a paraphrase run is paired image for image
with the names run. Before anything is generated the model is taught the paraphrase words (their token
embeddings are appended; prompts of the old words encode exactly as before). ``names`` is the default
and is not recorded in the protocol, so run folders made before the option existed still resume.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from cadkit.benchmarks.framework.options import BenchOptions
from cadkit.benchmarks.framework.registry import SuiteOption
from cadkit.data import PromptRecord
from cadkit.errors import bad_arg
from cadkit.tiny.paraphrases import PROMPT_SETS

__all__ = ["PROMPT_SETS", "PROMPT_SET_OPTION", "prompt_set", "check_prompt_set", "teach_prompt_set", "paraphrased",
           "paraphrased_grid", "prompt_set_note"]


PROMPT_SET_OPTION = SuiteOption(
    "prompt_set", "--prompt-set",
    "names | paraphrases: evaluation prompts that name each class / style, or the embedded world's descriptions that never "
    "name it (the edits are made from the names either way; same seeds) [names]")


def prompt_set(o: BenchOptions) -> str:
    """The run's prompt set (``names`` unless ``--prompt-set paraphrases``)."""
    return str(o.extra.get("prompt_set") or "names")


def _world(o: BenchOptions) -> Any:
    from cadkit.models.registry import load_world

    world = load_world(o.model)
    if world is None or not hasattr(world, "paraphrase"):
        raise bad_arg("prompt_set", f"names (model {o.model!r} has no embedded world with paraphrases)", "paraphrases")
    return world


def check_prompt_set(o: BenchOptions, objects: Sequence[str] = (), styles: Sequence[str] = ()) -> BenchOptions:
    """Validate ``--prompt-set`` for a run judging ``objects`` and ``styles`` (one-line errors naming
    ``prompt_set``; nothing loaded). ``names`` is dropped from ``extra`` (the protocol of a names run is
    the one it always had)."""
    v = o.extra.get("prompt_set")
    if v is not None and v not in PROMPT_SETS:
        raise bad_arg("prompt_set", PROMPT_SETS, v)
    if v in (None, "names"):
        return dataclasses.replace(o, extra={k: x for k, x in o.extra.items() if k != "prompt_set"}) if "prompt_set" in o.extra else o
    if o.prompts:
        raise bad_arg("prompt_set", "names (with --prompts the prompts are the file's)", v)
    world = _world(o)
    world.check_paraphrased(objects, "object")
    world.check_paraphrased(styles, "style")
    return o


def teach_prompt_set(o: BenchOptions, adapter: Any) -> None:
    """Teach the loaded model the paraphrase words (``--prompt-set paraphrases``; else nothing)."""
    if prompt_set(o) == "paraphrases":
        _world(o).teach_paraphrases(adapter.pipe)


def paraphrased(o: BenchOptions, records: Sequence[PromptRecord], kind: str) -> list[PromptRecord]:
    """``records`` with row ``j`` of each class (``kind`` object: ``cls``; style: ``artist``) prompted by the
    class's paraphrase ``j``; unchanged under ``names``."""
    if prompt_set(o) != "paraphrases":
        return list(records)
    world = _world(o)
    return _reprompted(records, lambda r: str(r.cls if kind == "object" else r.artist), lambda name, j: world.paraphrase(name, kind, j))


def paraphrased_grid(o: BenchOptions, records: Sequence[PromptRecord]) -> list[PromptRecord]:
    """Object x style grid rows (``cls`` the object, ``extra["style"]`` the style) with row ``j`` of a cell
    prompted by the object's paraphrase ``j`` followed by the style's phrase ``j``; unchanged under ``names``."""
    if prompt_set(o) != "paraphrases":
        return list(records)
    world = _world(o)
    return _reprompted(records, lambda r: (str(r.cls), str(r.extra["style"])), lambda cell, j: world.paraphrase_grid(*cell, j))


def _reprompted(records: Sequence[PromptRecord], group: Callable[[PromptRecord], Any], prompt: Callable[[Any, int], str]) -> list[PromptRecord]:
    """``records`` with row ``j`` of each ``group(record)`` prompted by ``prompt(group, j)`` (seeds and the rest kept)."""
    seen: dict[Any, int] = {}
    out = []
    for r in records:
        g = group(r)
        seen[g] = seen.get(g, -1) + 1
        out.append(dataclasses.replace(r, prompt=prompt(g, seen[g])))
    return out


def prompt_set_note(o: BenchOptions) -> list[str]:
    """The report line of a paraphrase run (none for names)."""
    if prompt_set(o) != "paraphrases":
        return []
    return ["prompt set: paraphrases - every judged prompt of an erased kind describes its class / style without naming it "
            "(row j: paraphrase j, same seeds as the names run); the edits were made from the names; in the object suites the "
            "weak-class and style retain columns keep their named prompts"]
