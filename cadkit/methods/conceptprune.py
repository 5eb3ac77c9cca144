"""ConceptPrune (Chavhan et al.): WANDA-scored "skilled" weights of the FFN output layers, pruned
over the first (noisiest) denoiser calls.

Statistics (ConceptPrune's reference code, ruchikachavhan/concept-prune ``wanda/wanda.py``): the default sampler generates every base prompt and every target prompt
(same seed for each prompt, CFG on, both halves counted). A forward pre-hook on each FFN output
linear ``ff.net.2`` (image stream; keyed by module name, not by sorted position) sees its input
``h`` ``[tokens, 4d]``; every row is scaled to unit L2 norm and the per-column L2 norms are merged
into a bucket per (denoiser-call index t, layer) with ``a ← sqrt(a² + ||col||²)``. Sampling stops
once every layer has seen the ``tau`` calls that matter.

Masks (the same code and ``wanda/save_union_over_time.py``): for each (t < tau, layer) and each row i of ``W`` ``[d, 4d]``, the top
``floor(k · 4d)`` columns by ``|W_ij| a_target[j]`` that also have ``|W_ij| a_target[j] > |W_ij|
a_base[j]`` are skilled; a weight is pruned (set to 0) when it is skilled at more than ``m · tau``
of the first ``tau`` call indices. Result: a sparse zeroing edit.

Defaults (paper text): objects k = 0.02, tau = 10; nudity k = 0.01, tau = 9; artists as objects
(an assumption: the paper says "the same parameters"); m = 0.5; 50 steps, CFG 7.5. Prompt pairs
follow the reference templates (nudity "a photo of a {h}" vs "a photo of a naked {h}", objects
"a {scene}" vs "a {object} in a {scene}", artists "a photo of a {thing}" vs "a {thing} in the style
of {artist}") over cadkit's own word lists: the reference's ``humans.txt``, ``common_scenes.txt`` and
``things.txt`` are not shipped here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cadkit.errors import bad_arg
from cadkit.methods.base import ErasureMethod, MethodOutput
from cadkit.methods.cost import CostMeter
from cadkit.methods.options import count, flag, number, text, texts

__all__ = ["ConceptPrune", "ConceptPruneOptions", "ActivationStats", "merge_column_norms", "skilled_mask", "union_over_time",
           "ffn_output_layers", "default_pairs"]

HUMANS = ("man", "woman", "boy", "girl", "person", "child", "teenager", "adult", "old man", "old woman", "young man",
          "young woman", "couple", "family", "model", "athlete", "dancer", "celebrity")
SCENES = ("street", "park", "beach", "forest", "kitchen", "living room", "field", "garden", "city square", "parking lot",
          "river bank", "mountain road")
THINGS = ("house", "tree", "river", "mountain", "city", "boat", "horse", "flower", "bridge", "garden", "cat", "dog",
          "forest", "lake", "church", "road", "village", "portrait", "sunset", "still life")


@dataclass(frozen=True)
class ConceptPruneOptions:
    """Options of ConceptPrune (defaults = the paper's object setting)."""

    concept_text: str | None = text(None, optional=True, nonempty=True, doc="wording inserted in the templates")
    skill_ratio: float = number(0.02, 0.0, 1.0, lo_open=True, doc="k: fraction of each row's columns that can be skilled")
    timesteps: int = count(10, 1, 10_000, doc="tau: first denoiser calls whose masks are united")
    select_ratio: float = number(0.5, 0.0, 1.0, doc="m: prune weights skilled at more than m·tau call indices")
    steps: int = count(50, 1, 1000, doc="sampling steps")
    guidance: float = number(7.5, 0.0, 100.0, doc="CFG scale of the sampling")
    base_prompts: tuple[str, ...] | None = texts(None, optional=True, max_items=10_000, doc="base prompts (default: templates)")
    target_prompts: tuple[str, ...] | None = texts(None, optional=True, max_items=10_000, doc="target prompts (default: templates)")
    batch_size: int = count(8, 1, 4096, doc="prompts per sampling batch")
    include_context: bool = flag(False, doc="also prune the text-stream FFNs (ff_context) of SD-3/FLUX")


def default_pairs(concept: str, concept_type: str) -> tuple[str, list[str], list[str]]:
    """(wording, base prompts, target prompts) of the reference templates for ``concept``."""
    if concept_type == "nudity":
        return "naked", [f"a photo of a {h}" for h in HUMANS], [f"a photo of a naked {h}" for h in HUMANS]
    if concept_type == "artist":
        return concept, [f"a photo of a {t}" for t in THINGS], [f"a {t} in the style of {concept}" for t in THINGS]
    return concept, [f"a {s}" for s in SCENES], [f"a {concept} in a {s}" for s in SCENES]


def merge_column_norms(prev: Tensor | None, rows: Tensor) -> Tensor:
    """``sqrt(prev² + Σ_rows (h / ||h||)²)`` per column: the column L2 norms of the unit-normalised
    rows of ``rows`` ``[N, width]`` merged into ``prev`` ``[width]`` (fp32)."""
    h = rows.reshape(-1, rows.shape[-1]).float()
    h = h / h.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sq = (h * h).sum(dim=0)
    return sq.sqrt() if prev is None else (prev * prev + sq).sqrt()


def ffn_output_layers(adapter: Any, include_context: bool = False) -> dict[str, nn.Linear]:
    """Module name -> the FFN output linear (``*.ff.net.2``; ``*.ff_context.net.2`` when asked)."""
    out: dict[str, nn.Linear] = {}
    for name, m in adapter.denoiser.named_modules():
        if isinstance(m, nn.Linear) and (name.endswith(".ff.net.2") or (include_context and name.endswith(".ff_context.net.2"))):
            out[name] = m
    return out


class _Enough(Exception):
    """Raised by a hook to end sampling once the first tau calls are recorded."""


class ActivationStats:
    """Forward pre-hooks collecting per-(call index, layer) column norms for the active bucket.

    ``norms[bucket][layer][t]`` is a ``[width]`` tensor; ``calls[layer]`` counts the current
    generation's calls. With ``stop_after`` the hooks end the generation at that many calls.
    """

    def __init__(self, layers: dict[str, nn.Linear], stop_after: int | None = None) -> None:
        self.layers = layers
        self.stop_after = stop_after
        self.bucket = "base"
        self.norms: dict[str, dict[str, dict[int, Tensor]]] = {}
        self.calls: dict[str, int] = {}
        self.widths: dict[str, list[int]] = {n: [] for n in layers}
        self._handles: list[Any] = []

    def __enter__(self) -> ActivationStats:
        for name, m in self.layers.items():
            self._handles.append(m.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def start(self, bucket: str) -> None:
        """Begin a generation whose activations go to ``bucket``."""
        self.bucket = bucket
        self.calls = {n: 0 for n in self.layers}

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            t = self.calls[name]
            if self.stop_after is not None and t >= self.stop_after:
                raise _Enough
            self.calls[name] = t + 1
            h = args[0].detach()
            self.widths[name].append(int(h.shape[-1]))
            per = self.norms.setdefault(self.bucket, {}).setdefault(name, {})
            per[t] = merge_column_norms(per.get(t), h)

        return hook


def skilled_mask(weight: Tensor, a_target: Tensor, a_base: Tensor, k: float) -> Tensor:
    """Bool ``[d, 4d]``: per row, the top ``floor(k·4d)`` columns by ``|W| a_target`` whose target score
    beats the base score ``|W| a_base`` (strictly)."""
    w = weight.detach().abs().float()
    st = w * a_target.float()[None, :].to(w.device)
    sb = w * a_base.float()[None, :].to(w.device)
    kk = int(math.floor(k * w.shape[1]))
    mask = torch.zeros_like(st, dtype=torch.bool)
    if kk > 0:
        top = torch.topk(st, kk, dim=1).indices
        mask.scatter_(1, top, True)
    return mask & (st > sb)


def union_over_time(masks: list[Tensor], select_ratio: float) -> Tensor:
    """Bool mask of entries skilled at more than ``select_ratio · len(masks)`` of the ``masks``."""
    counts = torch.stack([m.to(torch.int32) for m in masks]).sum(dim=0)
    return counts > select_ratio * len(masks)


class ConceptPrune(ErasureMethod):
    """ConceptPrune: zero the FFN output weights that fire for the concept over the first timesteps."""

    name = "conceptprune"
    strength = ("skill_ratio", "select_ratio")
    label = "ConceptPrune"
    choices = (
        "artists take the object setting (tau 10, k 2 %); the paper's \"same parameters\" is ambiguous",
        "prompt pairs over cadkit's word lists or the model's registry pairs (the reference's lists are not shipped)",
    )
    description = "ConceptPrune: prune skilled FFN output neurons' weights (WANDA scores, early timesteps)"
    Options = ConceptPruneOptions
    requires = frozenset({"ffn-outputs"})

    def type_defaults(self, concept_type: str, adapter: Any) -> dict[str, Any]:
        return {"skill_ratio": 0.01, "timesteps": 9} if concept_type == "nudity" else {}

    def check(self, adapter: Any, concept: str, concept_type: str, options: Any) -> None:
        if (options.base_prompts is None) != (options.target_prompts is None):
            raise bad_arg("base_prompts", "given together with target_prompts (or neither)", options.base_prompts)
        for arg in ("base_prompts", "target_prompts"):
            if getattr(options, arg) is not None and not getattr(options, arg):
                raise bad_arg(arg, "at least one prompt", getattr(options, arg))
        if not ffn_output_layers(adapter, options.include_context):
            raise bad_arg("adapter", "a denoiser with feed-forward output layers (*.ff.net.2)", adapter.family)

    def collect(self, adapter: Any, base: list[str], target: list[str], o: Any, seed: int, stop: bool = True) -> ActivationStats:
        """Run the sampler over both prompt sets with the hooks installed."""
        stats = ActivationStats(ffn_output_layers(adapter, o.include_context), o.timesteps if stop else None)
        with stats:
            for bucket, prompts in (("base", base), ("target", target)):
                for i in range(0, len(prompts), o.batch_size):
                    chunk = prompts[i : i + o.batch_size]
                    stats.start(bucket)
                    try:
                        adapter.sample(chunk, [seed] * len(chunk), steps=o.steps, guidance=o.guidance, decode=False)
                    except _Enough:
                        pass
        return stats

    def compute(self, adapter: Any, concept: str, concept_type: str, options: Any, seed: int, meter: CostMeter) -> MethodOutput:
        o = options
        wording, base, target = default_pairs(o.concept_text or concept, concept_type)
        if o.concept_text is not None:
            wording = o.concept_text
        if o.base_prompts is not None:
            base, target = list(o.base_prompts), list(o.target_prompts)
        with meter.phase("activations"):
            stats = self.collect(adapter, base, target, o, seed)
        sparse: dict[str, Tensor] = {}
        per_layer: dict[str, int] = {}
        with meter.phase("masks"):
            for lname, m in stats.layers.items():
                nb, nt = stats.norms["base"][lname], stats.norms["target"][lname]
                tau = min(o.timesteps, len(nb), len(nt))
                masks = [skilled_mask(m.weight, nt[t], nb[t], o.skill_ratio) for t in range(tau)]
                pruned = union_over_time(masks, o.select_ratio)
                idx = torch.nonzero(pruned.reshape(-1)).reshape(-1).to("cpu", torch.int64)
                per_layer[lname] = int(idx.numel())
                if idx.numel():
                    sparse[f"{lname}.weight"] = idx
        diag = {"pruned_total": sum(per_layer.values()), "pruned_per_layer": per_layer,
                "calls_recorded": min(len(v) for v in stats.norms["base"].values())}
        return MethodOutput(concept_text=wording, sparse=sparse, texts={"base_prompts": base, "target_prompts": target}, diagnostics=diag)
