"""Run each erasure method once on the trained ``tiny`` model and judge a rough erasure check.

For every method: ``run_method(name, adapter, concept, "object", options)`` (cost record), then
``images_per_class`` images of "an image of a {class}" per class (seeds 0..n-1, 20 DDIM steps,
CFG 5, as ``cadkit tiny evaluate``) with the edit applied, judged by the tiny object classifier:
accuracy on the erased class and mean accuracy on the others. The base model is judged the same
way. Writes ``--out`` (JSON) and prints a table. Figures only (not a benchmark protocol)::

    python -m benchmarks.perf.methods_tiny --concept circle --images-per-class 20 --out methods_tiny.json
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

__all__ = ["TINY_METHODS", "judge_classes", "main"]

#: The methods this script runs by default (their options on ``tiny`` are the registry's: ``method_defaults``).
TINY_METHODS = ("cad", "uce", "rece", "esd-u", "esd-x", "conceptprune")


@torch.no_grad()
def judge_classes(adapter: Any, classifier: Any, classes: list[str], n: int, batch: int = 50) -> dict[str, float]:
    """Per class: the fraction of ``n`` images of "an image of a {class}" the classifier calls that class."""
    from cadkit.tiny.domain import object_prompt

    out: dict[str, float] = {}
    for c in classes:
        hits = 0
        for i in range(0, n, batch):
            k = min(batch, n - i)
            res = adapter.sample([object_prompt(c)] * k, list(range(i, i + k)), steps=20, guidance=5.0)
            pred = classifier(res.images).argmax(dim=1)
            hits += int((pred == classifier.classes.index(c)).sum())
        out[c] = hits / n
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from cadkit.editing.edits import apply_edit
    from cadkit.methods import run_method
    from cadkit.models import load_adapter
    from cadkit.models.registry import method_defaults
    from cadkit.tiny.domain import OBJECTS
    from cadkit.tiny.judge import object_classifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concept", default="circle")
    ap.add_argument("--methods", default=",".join(TINY_METHODS))
    ap.add_argument("--images-per-class", type=int, default=20)
    ap.add_argument("--classes", default=",".join(OBJECTS), help="classes judged (the concept is always included)")
    ap.add_argument("--options", default="{}", help='JSON {method: {option: value}} over the registry defaults')
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    adapter = load_adapter("tiny", device=args.device)
    load_s = time.perf_counter() - t0
    clf = object_classifier().to(adapter.device)
    classes = [args.concept] + [c for c in args.classes.split(",") if c and c != args.concept]
    extra = json.loads(args.options)
    report: dict[str, Any] = {"concept": args.concept, "images_per_class": args.images_per_class, "load_s": round(load_s, 3), "runs": {}}
    base = judge_classes(adapter, clf, classes, args.images_per_class)
    report["runs"]["base"] = {"accuracy": base}
    for name in [m for m in args.methods.split(",") if m]:
        opts = method_defaults("tiny", name, "object", args.concept)  # the registry values
        opts.update(extra.get(name, {}))
        res = run_method(name, adapter, args.concept, "object", opts, seed=0, load_time_s=load_s)
        t1 = time.perf_counter()
        with apply_edit(adapter, res.edit):
            acc = judge_classes(adapter, clf, classes, args.images_per_class)
        report["runs"][name] = {"accuracy": acc, "cost": res.cost.to_dict(), "entries": res.edit.num_selected(),
                                "concept_text": res.record["concept_text"], "options": res.record["options"],
                                "diagnostics": {k: v for k, v in res.record["diagnostics"].items() if k != "pruned_per_layer"},
                                "judge_s": round(time.perf_counter() - t1, 2)}
        print(f"done {name}: edit {res.cost.edit_time_s:.2f} s", flush=True)
    print(f"{'run':14s} {'target':>7s} {'others':>7s} {'edit s':>8s} {'RSS+ MB':>8s} {'CUDA MB':>8s} {'entries':>9s}")
    for name, r in report["runs"].items():
        acc = r["accuracy"]
        others = [v for c, v in acc.items() if c != args.concept]
        cost = r.get("cost", {})
        print(f"{name:14s} {acc[args.concept]:7.2f} {sum(others) / max(len(others), 1):7.2f} {cost.get('edit_time_s', 0):8.2f} "
              f"{cost.get('peak_rss_growth_mb') or 0:8.1f} {cost.get('peak_mem_mb') or 0:8.1f} {r.get('entries', 0):9d}")
    if args.out:
        from cadkit.outputs import write_json

        write_json(args.out, report)
    return report


if __name__ == "__main__":
    main()
