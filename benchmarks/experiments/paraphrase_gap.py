"""How much more (or less) of an erased class do paraphrases draw than its name? A paired comparison of two
``erase-objects`` runs on ``tiny`` that differ only in ``--prompt-set`` (same methods, classes, seeds):

    python -m benchmarks.experiments.paraphrase_gap --names RUN_NAMES --paraphrases RUN_PARA [--names-cache DIR]

Row j of a class has the same seed in both runs and the edit of each method is the same (it is made from the
names), so every target image of the names run has a partner in the paraphrase run. For each method the
script reads both runs' cached images of each erased class under that class's edit, lets the tiny judge name
them, and prints the target accuracy under names and under paraphrases and their paired difference with a
95 % percentile bootstrap interval (1,000 replicates, numpy seed 0; rows redrawn within every class, the same
draw for both prompt sets). Nothing is generated: a missing image is an error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _hits(cache: Any, keys: list[str], judge: Any, k: int) -> np.ndarray:
    imgs = torch.stack([cache.get(key) for key in keys]).float()
    with torch.no_grad():
        return (judge(imgs)[0].argmax(1) == k).numpy().astype(np.float64)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from cadkit.benchmarks.framework import BenchOptions
    from cadkit.benchmarks.framework.prompt_sets import paraphrased
    from cadkit.data import ImageCache, class_prompts
    from cadkit.tiny.domain import OBJECTS
    from cadkit.tiny.judge import load_judge

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", required=True, help="erase-objects run folder with --prompt-set names")
    ap.add_argument("--paraphrases", required=True, help="the same run with --prompt-set paraphrases")
    ap.add_argument("--names-cache", default=None, help="image cache of the names run [NAMES/cache]")
    ap.add_argument("--paraphrases-cache", default=None, help="image cache of the paraphrase run [PARAPHRASES/cache]")
    ap.add_argument("--replicates", type=int, default=1000)
    a = ap.parse_args(argv)
    runs = {"names": Path(a.names), "paraphrases": Path(a.paraphrases)}
    res = {k: json.loads((p / "results.json").read_text()) for k, p in runs.items()}
    proto = res["names"]["protocol"]
    if res["paraphrases"]["protocol"].get("extra.prompt_set") != "paraphrases" or "extra.prompt_set" in proto:
        raise SystemExit("error: --names must be a names run and --paraphrases a paraphrase run")
    classes, per, seed = list(proto["classes"]), int(proto["images_per_class"]), int(proto["seed"])
    recs = class_prompts(classes, per, proto["template"], base_seed=seed)
    records = {"names": recs, "paraphrases": paraphrased(BenchOptions(model="tiny", extra={"prompt_set": "paraphrases"}), recs, "object")}
    caches = {"names": ImageCache(a.names_cache or runs["names"] / "cache"),
              "paraphrases": ImageCache(a.paraphrases_cache or runs["paraphrases"] / "cache")}
    judge = load_judge().eval()
    methods = [r["model"] for r in res["names"]["tables"][0]["rows"] if r["model"] != "base"]
    out: dict[str, Any] = {"classes": classes, "images_per_class": per, "methods": {}}
    rng = np.random.default_rng(0)
    draws = [[rng.integers(0, per, per) for _ in classes] for _ in range(a.replicates)]
    print(f"{'method':<14} {'names: target %':>16} {'paraphrases: target %':>22} {'paraphrases - names [95 % CI]':>32}")
    for m in methods:
        hits: dict[str, list[np.ndarray]] = {"names": [], "paraphrases": []}
        for c in classes:
            for kind in ("names", "paraphrases"):
                r = res[kind]
                cond = r["conditions"][f"{m} {c}"]
                mk = f"{r['protocol']['model']}@{r['protocol']['model_fingerprint']}"
                rs = [x for x in records[kind] if x.cls == c]
                keys = [caches[kind].key_for(x, mk, cond["edit_key"], r["protocol"]["generation"]) for x in rs]
                hits[kind].append(_hits(caches[kind], keys, judge, OBJECTS.index(c)))
        n = 100 * float(np.mean([h.mean() for h in hits["names"]]))
        p = 100 * float(np.mean([h.mean() for h in hits["paraphrases"]]))
        boot = [100 * float(np.mean([hp[d].mean() - hn[d].mean() for hn, hp, d in zip(hits["names"], hits["paraphrases"], ds)]))
                for ds in draws]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        out["methods"][m] = {"names": n, "paraphrases": p, "diff": p - n, "diff_lo": float(lo), "diff_hi": float(hi)}
        print(f"{m:<14} {n:>16.1f} {p:>22.1f} {p - n:>+14.1f} [{lo:+.1f}, {hi:+.1f}]")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
