"""``cadkit verify``: predicted = Σα exactly; actual changes recomputed independently."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from cadkit.attribution.cad import AttributionSpec
from cadkit.attribution.verify import AblationSpec, pearson_and_slope, random_subsets, verify
from cadkit.models import load_adapter
from tests.helpers import assert_one_line_error

T = 3




def test_verify_predicted_and_actual(tiny_sd1: Path) -> None:
    """Predicted = Σα exactly; ``actual`` = J with the base-prompt reference held at the unablated model's
    prediction (computed once, by hand, before any ablation: the function α differentiates);
    ``actual_recomputed`` = J with the reference recomputed under the ablation. Weights zeroed by hand."""
    a = load_adapter(str(tiny_sd1), dtype=torch.float64)
    # fixed pairs: the trajectory is sampled once with the unablated weights
    traj = a.sample(["a cat"], [0], steps=T, guidance=3.0, return_trajectory=True, decode=False).trajectory
    cond, base = a.encode(["a cat"]), a.encode([""])
    with torch.no_grad():
        held = [a.denoiser(st.latents, st.timestep, encoder_hidden_states=base.embeds).sample.clone() for st in traj]

    def j_now(hold: bool) -> float:
        tot = 0.0
        with torch.no_grad():
            for k, st in enumerate(traj):
                ref = held[k] if hold else a.denoiser(st.latents, st.timestep, encoder_hidden_states=base.embeds).sample
                out = a.denoiser(st.latents, st.timestep, encoder_hidden_states=cond.embeds).sample
                tot += float(((ref - out) ** 2).sum())
        return tot

    res = verify(a, AttributionSpec("a cat", timesteps=T, seed=0), AblationSpec(trials=3, fraction=1e-2, top_ratio=0.05))
    j0 = j_now(True)
    assert abs(res.objective_value - j0) <= 1e-9 * abs(j0) and abs(j_now(False) - j0) <= 1e-12 * abs(j0)
    params = dict(a.denoiser.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    assert [t.kind for t in res.trials] == ["random"] * 3 + ["top"]
    for t in res.trials:
        want_pred = sum(float(res.scores[n].flatten()[i].double().sum()) for n, i in t.subset.items())
        assert t.predicted == want_pred
        with torch.no_grad():
            for n, i in t.subset.items():
                params[n].view(-1)[i] = 0.0
        actual, recomputed = j0 - j_now(True), j0 - j_now(False)
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(before[n])
        assert abs(t.actual - actual) <= 1e-9 * max(1.0, abs(actual)), (t.actual, actual)
        assert t.actual_recomputed is not None
        assert abs(t.actual_recomputed - recomputed) <= 1e-9 * max(1.0, abs(recomputed)), (t.actual_recomputed, recomputed)
    assert all(torch.equal(p, before[n]) for n, p in params.items())


def test_verify_reuses_the_attribution_pairs(tiny_sd1: Path) -> None:
    """verify samples each trajectory once (inside the attribution), never again for the ablations."""
    a = load_adapter(str(tiny_sd1), dtype=torch.float64)
    calls = []
    real = a.sample

    def counting(*args, **kw):  # type: ignore[no-untyped-def]
        calls.append(kw.get("return_trajectory"))
        return real(*args, **kw)

    a.sample = counting  # type: ignore[method-assign]
    verify(a, AttributionSpec("a cat", timesteps=T, samples=2, seed=0, batch_size=1), AblationSpec(trials=2, fraction=1e-2))
    assert calls == [True, True]  # one trajectory per sample


def test_verify_amplify_reference_is_the_target(tiny_sd1: Path) -> None:
    """For amplify the reference is the training target (no weights): held and recomputed coincide, and the
    held series equals J recomputed by hand from the same pairs."""
    from cadkit.attribution import CAD

    a = load_adapter(str(tiny_sd1), dtype=torch.float64)
    images = torch.rand(2, 3, a.default_resolution, a.default_resolution, dtype=torch.float64) * 2 - 1
    scores = CAD(a, "ff").attribute("a cat", objective="amplify", images=images, timesteps=T, seed=3, batch_size=2)
    res = verify(a, AttributionSpec("a cat", "amplify", timesteps=T), AblationSpec(trials=2, fraction=1e-2), scores=scores)
    assert all(t.actual_recomputed is None for t in res.trials)
    src, cond = scores.pairs, a.encode(["a cat"])
    assert src is not None
    params = dict(a.denoiser.named_parameters())
    for t in res.trials:
        before = {n: params[n].detach().clone() for n in t.subset}

        def j() -> float:
            x, tt, target = src.batch(torch.arange(len(src)))
            with torch.no_grad():
                return float(-((target - a.predict(x, tt, cond.expand(len(tt)))) ** 2).sum())

        j0 = j()
        with torch.no_grad():
            for n, i in t.subset.items():
                params[n].view(-1)[i] = 0.0
        j1 = j()
        with torch.no_grad():
            for n, b in before.items():
                params[n].copy_(b)
        assert abs(t.actual - (j0 - j1)) <= 1e-9 * max(1.0, abs(j0 - j1))


def test_random_subsets_sizes_and_uniqueness() -> None:
    shapes = {"a": torch.Size([10, 20]), "b": torch.Size([7]), "c": torch.Size([3, 3, 3])}
    subs = random_subsets(shapes, 0.1, 5, seed=1)
    total = 200 + 7 + 27
    for s in subs:
        assert sum(v.numel() for v in s.values()) == round(0.1 * total)
        for n, v in s.items():
            assert v.unique().numel() == v.numel() and int(v.max()) < shapes[n].numel()
    assert random_subsets(shapes, 0.1, 5, seed=1)[0]["a"].tolist() == subs[0]["a"].tolist()


def test_pearson_and_slope_reference() -> None:
    import numpy as np

    x, y = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    y = 0.5 * x + 0.1 * y
    r, slope = pearson_and_slope(x, y)
    assert abs(r - np.corrcoef(x.numpy(), y.numpy())[0, 1]) < 1e-12
    assert abs(slope - np.polyfit(x.numpy(), y.numpy(), 1)[0]) < 1e-10


def test_verify_cli(tiny_sd1: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "v"
    res = run_cli("verify", "--model", tiny_sd1, "--concept", "a cat", "--trials", "3", "--fraction", "0.01",
                  "--timesteps", "2", "--top", "--ratio", "5%", "--out", out)
    assert res.code == 0, res
    assert "pearson_r=" in res.out and "top-k set" in res.out
    rows = list(csv.DictReader((out / "verify.csv").open()))
    assert [r["kind"] for r in rows] == ["random"] * 3 + ["top"]
    meta = json.loads((out / "verify.json").read_text())
    assert meta["trials"] == 3 and (out / "verify.png").stat().st_size > 1000
    assert all(r["actual_recomputed"] != "" for r in rows) and "pearson_r_recomputed" in meta
    assert_one_line_error(run_cli("verify", "--model", tiny_sd1, "--concept", "x", "--trials", "0", "--out", tmp_path / "n"), "--trials", "0")
    assert_one_line_error(run_cli("verify", "--model", tiny_sd1, "--concept", "x", "--fraction", "2", "--out", tmp_path / "n"), "--fraction")
    assert not (tmp_path / "n").exists()


def test_random_subsets_are_uniform() -> None:
    """Every entry is as likely to be drawn (the rejection sampler keeps the first k distinct draws), and
    dense and sparse subsets are both exact in size (seeded: the counts are deterministic)."""
    shapes = {"a": torch.Size([30]), "b": torch.Size([4, 5])}
    counts = torch.zeros(50)
    for s in random_subsets(shapes, 0.1, 4000, seed=3):  # k = 5 of 50: the sparse path
        counts[s.get("a", torch.empty(0, dtype=torch.long))] += 1
        counts[30 + s.get("b", torch.empty(0, dtype=torch.long))] += 1
    expected = 4000 * 5 / 50
    assert counts.sum() == 4000 * 5 and float(counts.min()) > 0.8 * expected and float(counts.max()) < 1.2 * expected
    dense = random_subsets(shapes, 0.9, 3, seed=3)  # k = 45 of 50: the permutation path
    assert all(sum(v.numel() for v in s.values()) == 45 for s in dense)
