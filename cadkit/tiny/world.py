"""The tiny world as the benchmarks see it: a model's *world* (see ``cadkit.models.registry``).

A world answers what the benchmarks need to know about a model's concepts without a hub: its object
classes and styles, their prompts, procedural renders of a class (real images for the amplify
objective), and the judges that name what an image shows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["TinyWorld", "WORLD"]


class TinyWorld:
    """The embedded procedural world (``cadkit.tiny.domain``) and its judge (``cadkit.tiny.judge``)."""

    #: The judge's name (``--judge``), the registry name of the model that draws this world.
    name = "tiny"
    #: ``class_prompts`` template of the style prompts (``style_prompt(style)``).
    style_template = "an image in {class} style"

    @property
    def objects(self) -> tuple[str, ...]:
        from cadkit.tiny.domain import OBJECTS

        return tuple(OBJECTS)

    @property
    def default_objects(self) -> tuple[str, ...]:
        """The benchmarks' default classes: the common ones (the long tail's rare classes only when named)."""
        from cadkit.tiny.domain import COMMON_OBJECTS

        return tuple(COMMON_OBJECTS)

    @property
    def styles(self) -> tuple[str, ...]:
        from cadkit.tiny.domain import STYLES

        return tuple(STYLES)

    def object_prompt(self, obj: str) -> str:
        from cadkit.tiny.domain import object_prompt

        return object_prompt(obj)

    def style_prompt(self, style: str) -> str:
        from cadkit.tiny.domain import style_prompt

        return style_prompt(style)

    # -- prompts that never name the concept (cadkit.tiny.paraphrases) --------------------------------------
    def paraphrase(self, name: str, kind: str, j: int) -> str:
        """Paraphrase ``j`` (cycling) of object class or style ``name`` (``kind``: object | style)."""
        from cadkit.tiny.paraphrases import paraphrase_for

        return paraphrase_for(name, kind, j)

    def paraphrase_grid(self, obj: str, style: str, j: int) -> str:
        """Row ``j`` of an object x style cell, naming neither (:func:`cadkit.tiny.paraphrases.grid_paraphrase`)."""
        from cadkit.tiny.paraphrases import grid_paraphrase

        return grid_paraphrase(obj, style, j)

    def check_paraphrased(self, names: Sequence[str], kind: str) -> None:
        """One-line error (naming ``prompt_set``) for a class or style in ``names`` without a paraphrase set."""
        from cadkit.tiny.paraphrases import check_paraphrased

        check_paraphrased(names, kind)

    def teach_paraphrases(self, pipe: Any) -> int:
        """Append the paraphrase words' embeddings to ``pipe`` (see :func:`cadkit.tiny.paraphrases.add_paraphrase_words`)."""
        from cadkit.tiny.paraphrases import add_paraphrase_words

        return add_paraphrase_words(pipe)

    def renders(self, cls: str, n: int, seed: int, resolution: int) -> Tensor | None:
        """``n`` procedural renders of object class ``cls`` (set ``1000 + seed``) in [-1, 1] at
        ``resolution``, or None for a class the world does not draw."""
        from cadkit.tiny.domain import OBJECTS, render_set

        if cls not in OBJECTS:
            return None
        imgs, _, _ = render_set(n, 1000 + seed, objects=[OBJECTS.index(cls)] * n)
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if x.shape[-1] != resolution:
            x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
        return x

    def judge_path(self) -> Path:
        from cadkit.tiny.judge import judge_path

        return judge_path()

    def object_judge(self, weights: str | os.PathLike[str] | None = None) -> nn.Module:
        """Images [B, 3, H, W] in [0, 1] -> object logits; ``.classes`` names them."""
        from cadkit.tiny.judge import object_classifier

        return object_classifier(weights)

    def style_judge(self, weights: str | os.PathLike[str] | None = None) -> nn.Module:
        """Images [B, 3, H, W] in [0, 1] -> style logits; ``.classes`` names them."""
        from cadkit.tiny.judge import style_classifier

        return style_classifier(weights)


WORLD = TinyWorld()
