"""Does CAD-Amplify raise a weak concept of ``tiny``? Its weakest concepts are styles, not objects.

    python -m benchmarks.experiments.amplify_styles --style striped --images 40 --ratios 0.005,0.01,0.02,0.05,0.1,0.2

Every object class of ``tiny`` is drawn 100 % of the time, so ``amplify-objects`` cannot show a gain
there. Style prompts are weaker (``style_prompt("striped")`` is judged striped about half of the time),
so this attributes the amplify objective of ``style_prompt(style)`` on procedural renders of that style,
applies CAD-Amplify (``ff``, per row) at each ratio and prints the tiny judge's style accuracy (%) of
``--images`` generated images per style (same prompts and seeds for every ratio) and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def style_accuracy(adapter, judge, style: str, n: int, steps: int, guidance: float, edit=None) -> float:  # type: ignore[no-untyped-def]
    from cadkit.editing import apply_edit
    from cadkit.tiny.domain import STYLES, style_prompt

    handle = apply_edit(adapter, edit) if edit is not None else None
    try:
        res = adapter.sample([style_prompt(style)] * n, [7000 + i for i in range(n)], steps=steps, guidance=guidance)
    finally:
        if handle is not None:
            handle.remove()
    with torch.no_grad():
        pred = judge(res.images).argmax(1)
    return 100.0 * float((pred == STYLES.index(style)).float().mean())


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    from cadkit.attribution.cad import CAD
    from cadkit.editing import make_edit, parse_ratio
    from cadkit.models import load_adapter
    from cadkit.tiny.domain import STYLES, render_set, style_prompt
    from cadkit.tiny.judge import style_classifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--style", default="striped", choices=list(STYLES))
    ap.add_argument("--images", type=int, default=40, help="generated images per style and condition")
    ap.add_argument("--ratios", default="0.005,0.01,0.02,0.05,0.1,0.2")
    ap.add_argument("--renders", type=int, default=5, help="renders of the style for the amplify objective")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=5.0)
    a = ap.parse_args(argv)
    t0 = time.time()
    adapter, judge = load_adapter("tiny"), style_classifier()
    acc = {st: style_accuracy(adapter, judge, st, a.images, a.steps, a.guidance) for st in STYLES}
    out = {"base": acc}
    print("base", json.dumps(acc), flush=True)
    imgs, _, _ = render_set(a.renders, 1000, styles=[STYLES.index(a.style)] * a.renders)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    scores = CAD(adapter, "ff").attribute(style_prompt(a.style), objective="amplify", images=x, timesteps=25, guidance=3.0,
                                          batch_size=8)
    for r in (parse_ratio(v.strip(), "--ratios") for v in a.ratios.split(",") if v.strip()):
        edit = make_edit(scores, scores.metadata, "amplify", r, "row", "ff", model=adapter)
        acc = {st: style_accuracy(adapter, judge, st, a.images, a.steps, a.guidance, edit) for st in STYLES}
        out[f"amplify {r:g}"] = acc
        print(f"amplify {r:g}", json.dumps(acc), flush=True)
    print(json.dumps({"style": a.style, "images": a.images, **out}))
    print(f"{time.time() - t0:.0f} s")
    return out


if __name__ == "__main__":
    main()
