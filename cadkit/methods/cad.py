"""CAD-Erase as a method plug-in: ``CAD(adapter, modules).attribute(concept)`` then ``make_edit(erase)``.

Defaults are the paper's (SD-1.4): the ``ff`` group, 0.1 % of each row, one trajectory of 50 DDIM
steps at CFG 3 with ``c_base = ""``. Per-model values (e.g. ``tiny``: ``attn2`` at 5 % with 25
timesteps) are passed as options. Wording: the concept in lower case for objects, "naked" for
nudity, "a photo in the style of {artist}" for artists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cadkit.cad_settings import PAPER
from cadkit.methods.base import ErasureMethod, MethodOutput
from cadkit.methods.cost import CostMeter
from cadkit.methods.options import choice, count, number, text
from cadkit.tensor_files import encode_metadata

__all__ = ["CADErase", "CADOptions", "cad_wording", "attribution_spec"]


@dataclass(frozen=True)
class CADOptions:
    """Options of CAD-Erase (attribution + mask selection)."""

    concept_text: str | None = text(None, optional=True, nonempty=True, doc="the attributed prompt c (default: see module)")
    modules: str = text(PAPER.modules, nonempty=True, doc="module groups attributed and edited (comma list)")
    ratio: float = number(PAPER.ratio, 0.0, 1.0, lo_open=True, doc="fraction of each row (granularity row) zeroed")
    granularity: str = choice("row", ("row", "matrix", "global"), doc="mask granularity")
    fill: str = choice("zero", ("zero", "row-mean", "noise"), doc="value written into the ablated entries: zero (the paper), "
                       "the row's mean or noise with the row's mean and std (seeded), over the entries the edit keeps")
    samples: int = count(PAPER.samples, 1, 100_000, doc="trajectories of the concept")
    timesteps: int = count(PAPER.timesteps, 1, 1000, doc="sampling steps (= attributed timesteps per trajectory)")
    guidance: float = number(PAPER.guidance, 0.0, 100.0, doc="CFG of the trajectories")
    base_prompt: str = text(PAPER.base_prompt, doc="c_base of the erase objective")
    batch_size: int = count(4, 1, 4096, doc="(sample, t) pairs per backward pass")
    precision: str = choice("32", ("32", "bf16-mixed", "16-mixed"), doc="Lightning precision of the attribution")
    pair_design: str = choice(PAPER.pair_design, ("trajectories", "official", "stratified"), doc="erase pairs (cadkit.attribution.pairs)")


def cad_wording(concept: str, concept_type: str) -> str:
    """CAD's own concept wording (the official code's prompts, mail-research/CAD-attribution4diffusion)."""
    if concept_type == "nudity":
        return "naked"
    if concept_type == "artist":
        return f"a photo in the style of {concept}"
    return concept.lower()


def attribution_spec(o: CADOptions, wording: str, seed: int, objective: str = "erase", images: Any = None,
                     samples: int | None = None) -> Any:
    """The attribution CAD runs for ``wording`` under options ``o``: the ``cad`` method's and the benchmarks' CAD
    rows both come here (``objective`` amplify: ``images`` or ``samples`` generated ones, on the trajectories
    design, which is the only one that objective has)."""
    from cadkit.attribution.cad import AttributionSpec

    n = (samples or o.samples) if images is None else len(images)
    design = o.pair_design if objective == "erase" else "trajectories"
    return AttributionSpec(wording, objective, o.base_prompt, n, o.timesteps, o.guidance, seed, images, o.batch_size, design)


class CADErase(ErasureMethod):
    """CAD-Erase: zero the top positive attribution scores of each row."""

    name = "cad"
    label = "CAD-Erase"
    description = "CAD-Erase: attribution w * dJ/dw, zero the top positive components per row"
    Options = CADOptions
    strength = ("ratio",)

    def check(self, adapter: Any, concept: str, concept_type: str, options: Any) -> None:
        from cadkit.models.adapters.base import parse_modules

        parse_modules(options.modules, adapter.groups, arg="modules")
        from cadkit.attribution.pairs import check_pair_design

        check_pair_design(options.pair_design, options.samples, options.timesteps)

    def compute(self, adapter: Any, concept: str, concept_type: str, options: Any, seed: int, meter: CostMeter) -> MethodOutput:
        from cadkit.attribution.cad import CAD
        from cadkit.editing.edits import make_edit

        o = options
        wording = o.concept_text or cad_wording(concept, concept_type)
        with meter.phase("attribution"):
            accelerator = adapter.device.type if adapter.device.type in ("cpu", "cuda") else "auto"
            scores = CAD(adapter, o.modules, devices=1, precision=o.precision, accelerator=accelerator).run(attribution_spec(o, wording, seed))
        with meter.phase("masks"):
            meta = encode_metadata(scores.metadata)
            edit = make_edit(scores, meta, "erase", o.ratio, o.granularity, o.modules,
                             model=adapter)
            if o.fill != "zero":  # the same ablated set; reversible (the fill values are stored in the edit)
                from cadkit.editing.edits import fill_edit

                edit = fill_edit(edit, adapter, o.fill, seed)
        diag = {"objective_total": scores.objective_total, "entries": edit.num_selected()}
        return MethodOutput(concept_text=wording, edit=edit, texts={"base_prompt": o.base_prompt}, diagnostics=diag)
