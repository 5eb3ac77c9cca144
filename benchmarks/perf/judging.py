"""Time of the judging phase of an object-erasure suite, and how many images its judge networks classify.

    python -m benchmarks.perf.judging --out /tmp/judge_run [--repeats 2] [-- extra bench options]

Runs ``cadkit bench erase-objects --quick --methods cad,uce --out OUT`` in this process (a fresh ``OUT``: generation,
attribution and edits included), then ``--repeats`` times again on the same folder (everything cached: the run
resumes). In each run it measures, over every :meth:`BenchContext.evaluate` (each condition the suite judges, with
the hooks that run after it, the per-image hits of the intervals), the seconds spent outside image generation (the
judging phase), and the number of images fed to a judge network (a top-level ``nn.Module`` call made in that phase;
the diffusion model runs only inside generation). Prints one line per run and the best of the resumed runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["measure", "main"]


@contextmanager
def _instrumented(stats: dict[str, float]) -> Iterator[None]:
    """Count, while it is active, the judging seconds and the images judged (see the module docstring)."""
    import torch

    from cadkit.benchmarks.framework.context import BenchContext

    state = {"judging": 0, "generating": 0, "depth": 0}
    evaluate, generate = BenchContext.evaluate, BenchContext.generate

    def timed_evaluate(self: Any, *a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        g0 = stats["generate_s"]
        state["judging"] += 1
        try:
            return evaluate(self, *a, **k)
        finally:
            state["judging"] -= 1
            stats["judge_s"] += (time.perf_counter() - t0) - (stats["generate_s"] - g0)

    def timed_generate(self: Any, *a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        state["generating"] += 1
        try:
            return generate(self, *a, **k)
        finally:
            state["generating"] -= 1
            stats["generate_s"] += time.perf_counter() - t0

    def pre(module: Any, args: Any) -> None:
        if state["judging"] and not state["generating"]:
            if state["depth"] == 0 and args and isinstance(args[0], torch.Tensor):
                stats["judged_images"] += int(args[0].shape[0])
                stats["judge_calls"] += 1
            state["depth"] += 1

    def post(module: Any, args: Any, out: Any) -> None:
        if state["judging"] and not state["generating"]:
            state["depth"] -= 1

    h1 = torch.nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = torch.nn.modules.module.register_module_forward_hook(post)
    BenchContext.evaluate = timed_evaluate  # type: ignore[method-assign]
    BenchContext.generate = timed_generate  # type: ignore[method-assign]
    try:
        yield
    finally:
        BenchContext.evaluate = evaluate  # type: ignore[method-assign]
        BenchContext.generate = generate  # type: ignore[method-assign]
        h1.remove()
        h2.remove()


def measure(out: str, extra: list[str] | None = None) -> dict[str, float]:
    """One bench run into ``out``: ``{"judge_s", "generate_s", "judged_images", "judge_calls", "wall_s"}``."""
    from click.testing import CliRunner

    from cadkit.cli.main import cli

    stats = {"judge_s": 0.0, "generate_s": 0.0, "judged_images": 0.0, "judge_calls": 0.0}
    args = ["bench", "erase-objects", "--quick", "--methods", "cad,uce", "--out", out, *(extra or [])]
    t0 = time.perf_counter()
    with _instrumented(stats):
        res = CliRunner().invoke(cli, args, catch_exceptions=False)
    if res.exit_code != 0:
        raise SystemExit(f"bench failed (exit {res.exit_code}): {res.output.strip().splitlines()[-1:]}")
    stats["wall_s"] = time.perf_counter() - t0
    return stats


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="a run folder that does not exist yet")
    ap.add_argument("--repeats", type=int, default=2, help="resumed runs after the first")
    ap.add_argument("extra", nargs="*", help="more bench options (after --)")
    a = ap.parse_args(argv)
    runs = [measure(a.out, a.extra) for _ in range(1 + a.repeats)]
    for i, r in enumerate(runs):
        kind = "fresh" if i == 0 else "resumed"
        print(f"run {i} ({kind}): judging {r['judge_s']:.2f} s, {int(r['judged_images'])} images judged in {int(r['judge_calls'])} "
              f"judge calls; generation {r['generate_s']:.2f} s; wall {r['wall_s']:.2f} s")
    if len(runs) > 1:
        print(f"best resumed judging phase: {min(r['judge_s'] for r in runs[1:]):.2f} s")


if __name__ == "__main__":
    main()
