"""``BenchContext``: what a suite works with (model, prompts, cache, attribution, edits, judging).

A suite is a function ``suite(ctx) -> SuiteResult`` (see :mod:`benchmarks.framework.registry`). The
context gives it, with everything cached so that reruns resume:

* :meth:`BenchContext.object_records` -- ImageNette-style prompt records (CSV or generated);
* :meth:`BenchContext.generate` / :meth:`BenchContext.images` -- cached generation (Lightning
  predict loop, DDP over ``--devices``) and reading images back;
* :meth:`BenchContext.evaluate` -- generate what is missing, then judge a condition with the object
  judge and every ``--metric`` plugin (recorded under ``ctx.conditions``);
* :meth:`BenchContext.scores` / :meth:`BenchContext.edit` -- attribution and edit files in the run folder.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from torch import Tensor

from cadkit.benchmarks.framework.generation import edit_key, generate_missing
from cadkit.benchmarks.framework.judging import (
    DamagedImages,
    build_metrics,
    image_shape,
    judge_condition_hits,
    load_images,
    object_judge,
)
from cadkit.benchmarks.framework.options import BenchOptions
from cadkit.benchmarks.framework.run_cache import EditRecipe, get_edit, get_scores
from cadkit.benchmarks.framework.runfolder import RunFolder
from cadkit.data import ImageCache, PromptRecord

__all__ = ["BenchContext", "object_records"]

_T = TypeVar("_T")


def object_records(o: BenchOptions) -> list[PromptRecord]:
    """Prompt records of ``o.classes``: rows of the ImageNette CSV ``o.prompts`` (its ``class``,
    ``prompt`` and per-row ``evaluation_seed``; first ``images_per_class`` rows of each class), or
    ``images_per_class`` generated rows per class from ``o.template`` with seeded rows (``--prompt-set
    paraphrases``: each row prompted by a paraphrase of its class, same seeds)."""
    from cadkit.benchmarks.framework.prompt_sets import paraphrased
    from cadkit.data import class_prompts, load_prompts

    assert o.classes is not None and o.images_per_class is not None
    if o.prompts is not None:
        recs = load_prompts(o.prompts, format="imagenette", classes=list(o.classes), per_class=o.images_per_class)
        order = {c: i for i, c in enumerate(o.classes)}
        return sorted(recs, key=lambda r: (order.get(r.cls or "", 0), r.index))
    return paraphrased(o, class_prompts(list(o.classes), o.images_per_class, o.template, base_seed=o.seed), "object")


class BenchContext:
    """See the module docstring. ``opts`` are resolved options; ``run`` the run folder."""

    def __init__(self, opts: BenchOptions, adapter: Any, run: RunFolder, model_key: str, gen_protocol: dict[str, Any],
                 judge: Any = None, plugins: dict[str, Any] | None = None) -> None:
        self.opts = opts
        self.adapter = adapter
        self.run = run
        self.cache = ImageCache(run.cache_root)
        self.model_key = model_key
        self.gen_protocol = gen_protocol
        self.conditions: dict[str, dict[str, Any]] = {}
        #: per condition, the per-image hits (1/0 per record, in order) of each metric that reports them
        #: (``evaluate_variant``), so that nothing judges an image twice
        self.hits: dict[str, dict[str, np.ndarray]] = {}
        self.generated = 0
        self.repaired: list[str] = []  # cache entries found damaged, discarded and regenerated
        self._judge: Any = judge
        self._plugins: dict[str, Any] | None = plugins
        #: called as ``hook(name, records, edit, accuracy, hits)`` after each :meth:`evaluate`; ``hits``: the object
        #: judge's per-image hits (1/0 per record, in order; None if the judge does not report them), e.g. for intervals
        self.evaluate_hooks: list[Callable[[str, Sequence[PromptRecord], Any, dict[str, float], np.ndarray | None], None]] = []

    # -- prompts and images ------------------------------------------------------------------------------
    def object_records(self) -> list[PromptRecord]:
        return object_records(self.opts)

    @property
    def classes(self) -> list[str]:
        return list(self.opts.classes or [])

    def generate(self, records: Sequence[PromptRecord], edit: Any = None) -> int:
        """Generate the missing images of ``records`` (under ``edit``); returns how many were made."""
        n = generate_missing(self.adapter, records, self.cache, self.model_key, edit, self.gen_protocol, self.opts.runtime)
        self.generated += n
        return n

    def keys(self, records: Sequence[PromptRecord], edit: Any = None) -> list[str]:
        ek = edit_key(edit)
        return [self.cache.key_for(r, self.model_key, ek, self.gen_protocol) for r in records]

    def images(self, records: Sequence[PromptRecord], edit: Any = None) -> Tensor:
        """Cached images of ``records`` ``[N, 3, H, W]`` in [0, 1] (damaged ones regenerated first)."""
        return self._repairing(records, edit, lambda: load_images(self.cache, self.keys(records, edit), image_shape(self.gen_protocol)))

    def judge_cached(self, records: Sequence[PromptRecord], edit: Any, metrics: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """Judge the cached images of ``records`` under ``edit`` with ``metrics`` (see ``judge_condition``):
        ``(values, sha256 of the pixels)``. Damaged cache entries are discarded, regenerated and judged
        again, and the run says so; they are never used."""
        values, digest, _ = self.judge_cached_hits(records, edit, metrics)
        return values, digest

    def judge_cached_hits(self, records: Sequence[PromptRecord], edit: Any,
                          metrics: Mapping[str, Any]) -> tuple[dict[str, Any], str, dict[str, np.ndarray]]:
        """:meth:`judge_cached` and the per-image hits of the metrics that report them (``judge_condition_hits``)."""
        return self._repairing(records, edit, lambda: judge_condition_hits(self.cache, records, self.model_key, edit_key(edit),
                                                                           self.gen_protocol, metrics))

    def _repairing(self, records: Sequence[PromptRecord], edit: Any, read: Callable[[], _T]) -> _T:
        try:
            return read()
        except DamagedImages as exc:
            for d in exc.entries:
                self.cache.discard(d.key)
                self.repaired.append(f"{d.path.name}: {d.reason}")
            print(f"cadkit: {exc.message}: discarded and regenerated", file=sys.stderr, flush=True)
            self.generate(records, edit)
        return read()  # a second failure is reported as it is

    # -- judging -----------------------------------------------------------------------------------------
    def metric_context(self) -> dict[str, Any]:
        """Keyword context given to ``--metric`` plugin factories."""
        return {"classes": self.classes, "device": str(self.adapter.device), "out_dir": str(self.run.root),
                "model": self.opts.model, "suite": self.opts.suite}

    def judge(self) -> Any:
        if self._judge is None:
            o = self.opts
            self._judge = object_judge(o.judge, self.classes, o.judge_weights, o.judge_network)
        return self._judge

    def plugins(self) -> dict[str, Any]:
        if self._plugins is None:
            self._plugins = build_metrics(self.opts.metrics, **self.metric_context())
        return self._plugins

    def evaluate(self, name: str, records: Sequence[PromptRecord], edit: Any = None, **meta: Any) -> dict[str, float]:
        """Generate (if needed) and judge condition ``name``; returns per-class accuracy (percent).

        Plugin values and ``meta`` are kept in ``self.conditions[name]``.
        """
        self.generate(records, edit)
        metrics = {"object-accuracy": self.judge(), **self.plugins()}
        got, digest, per_image = self.judge_cached_hits(records, edit, metrics)
        hits = per_image.get("object-accuracy")
        acc = {str(k): float(v) for k, v in got.pop("object-accuracy").items()}
        self.conditions[name] = {
            "edit": getattr(edit, "source", None) if edit is not None else None,
            "edit_key": edit_key(edit), "selected_entries": edit.num_selected() if edit is not None else 0,
            "images": len(records), "images_sha256": digest, "accuracy": acc, "metrics": got, **meta,
        }
        for hook in self.evaluate_hooks:
            hook(name, records, edit, acc, hits)
        return acc

    # -- attribution and edits ---------------------------------------------------------------------------
    def scores(self, concept: str, objective: str = "erase", modules: str | None = None, images: Tensor | None = None,
               samples: int | None = None) -> tuple[dict[str, Tensor], dict[str, str], Path]:
        """Score file of ``concept`` (cached in ``scores/``) with the run's attribution settings
        (``samples`` overrides ``--attr-samples``, e.g. generated amplify images)."""
        from cadkit.benchmarks.framework.methods import cad_method_options
        from cadkit.methods.cad import attribution_spec

        spec = attribution_spec(cad_method_options(self.opts, concept), concept, self.opts.seed, objective, images, samples)
        return get_scores(self.adapter, self.run.scores_dir, spec, modules or str(self.opts.cad.modules), self.opts.runtime)

    def edit(self, concept: str, mode: str = "erase", ratio: float | None = None, modules: str | None = None,
             scale: float | None = None, images: Tensor | None = None, samples: int | None = None,
             score_modules: str | None = None) -> Any:
        """The edit of ``concept`` on ``modules`` (default ``--modules``) from the scores of the mode's objective
        (``amplify`` for the amplify mode, else ``erase``) computed on ``score_modules`` (default: ``modules``)."""
        cad = self.opts.cad
        mods = modules or str(cad.modules)
        s, meta, path = self.scores(concept, "amplify" if mode == "amplify" else "erase", score_modules or mods, images, samples)
        r = float(ratio if ratio is not None else cad.ratio)  # type: ignore[arg-type]
        return get_edit(self.adapter, self.run.edits_dir, s, meta, EditRecipe(concept, mode, r, mods, cad.granularity, scale), source=str(path))

    @property
    def is_main(self) -> bool:
        import torch.distributed as dist

        return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
