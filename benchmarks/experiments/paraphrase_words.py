"""Do the paraphrase words make ``tiny`` draw what they describe, and leave every named prompt alone?

    python -m benchmarks.experiments.paraphrase_words --images 20 [--paraphrases FILE]

For every common object class and every style, the same paraphrase prompts and seeds are sampled twice: by
the shipped model as it is (the new words fall back to byte-level pieces it never learned) and by the model
taught the words (``cadkit.tiny.paraphrases.add_paraphrase_words``); the tiny judge names each image. Named
prompts ("an image of a {object}", "an image in {style} style") are sampled by both too: the taught model must
give the very same images. Prints one line per class and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch


def _accuracy(adapter: Any, judge: Any, head: int, k: int, prompts: list[str], seeds: list[int], steps: int, guidance: float) -> tuple[float, torch.Tensor]:
    from cadkit.tiny.evaluate import sample_prompts

    imgs = sample_prompts(adapter, prompts, seeds, steps, guidance)
    with torch.no_grad():
        pred = judge(imgs)[head].argmax(1)
    return float((pred == k).float().mean()), imgs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from cadkit.models import load_adapter
    from cadkit.tiny.domain import OBJECTS, STYLES, object_prompt, style_prompt
    from cadkit.tiny.evaluate import DEFAULT_GUIDANCE, DEFAULT_STEPS
    from cadkit.tiny.judge import load_judge
    from cadkit.tiny.paraphrases import OBJECT_PARAPHRASES, STYLE_PARAPHRASES, add_paraphrase_words, paraphrase_for

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20, help="images per class (paraphrase j for image j, cycling)")
    ap.add_argument("--paraphrases", default=None, help="word embeddings (default: the shipped ones)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t0 = time.time()
    judge = load_judge().eval()
    plain, taught = load_adapter("tiny"), load_adapter("tiny")
    add_paraphrase_words(taught.pipe, a.paraphrases)
    rows = [(0, OBJECTS.index(o), o, "object", object_prompt(o)) for o in OBJECT_PARAPHRASES]
    rows += [(1, STYLES.index(s), s, "style", style_prompt(s)) for s in STYLE_PARAPHRASES]
    out: dict[str, Any] = {"images": a.images, "steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE, "classes": {}}
    same_named = True
    print(f"{'class':<10} {'kind':<6} {'paraphrase: shipped':>20} {'paraphrase: taught':>19} {'name: taught':>13}")
    for r, (head, k, name, kind, named) in enumerate(rows):
        seeds = [a.seed + 1000 * r + j for j in range(a.images)]
        para = [paraphrase_for(name, kind, j) for j in range(a.images)]
        before, _ = _accuracy(plain, judge, head, k, para, seeds, DEFAULT_STEPS, DEFAULT_GUIDANCE)
        after, _ = _accuracy(taught, judge, head, k, para, seeds, DEFAULT_STEPS, DEFAULT_GUIDANCE)
        n_plain, img_plain = _accuracy(plain, judge, head, k, [named] * a.images, seeds, DEFAULT_STEPS, DEFAULT_GUIDANCE)
        n_taught, img_taught = _accuracy(taught, judge, head, k, [named] * a.images, seeds, DEFAULT_STEPS, DEFAULT_GUIDANCE)
        same = bool(torch.equal(img_plain, img_taught))
        same_named &= same
        out["classes"][name] = {"kind": kind, "paraphrase_shipped": before, "paraphrase_taught": after, "name_shipped": n_plain,
                                "name_taught": n_taught, "named_images_identical": same}
        print(f"{name:<10} {kind:<6} {before:>20.2f} {after:>19.2f} {n_taught:>13.2f}{'' if same else '  (named images differ!)'}")
    for kind in ("object", "style"):
        vals = [v for v in out["classes"].values() if v["kind"] == kind]
        for key in ("paraphrase_shipped", "paraphrase_taught", "name_taught"):
            out[f"mean_{kind}_{key}"] = sum(v[key] for v in vals) / len(vals)
    out["named_images_identical"] = same_named
    out["wall_s"] = round(time.time() - t0, 1)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
