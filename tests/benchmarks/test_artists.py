"""erase-artists: the CLI end to end in styles mode; LPIPS per artist from a suite run equals a direct computation."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import FAST, assert_one_line_error, condition_images


def write_artists(path: Path) -> Path:
    """The artists CSV format: unnamed index, case_number, prompt, evaluation_seed, artist."""
    rows = [("Pablo Picasso", "a red circle, cubism"), ("Pablo Picasso", "a blue square, cubism"),
            ("Vincent van Gogh", "a green star, swirls"), ("Vincent van Gogh", "a pink heart, swirls"),
            ("Rembrandt", "a black ring, chiaroscuro")]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["", "case_number", "prompt", "evaluation_seed", "artist"])
        for i, (artist, prompt) in enumerate(rows):
            w.writerow([i, i, prompt, 3000 + 7 * i, artist])
    return path


def percent_of(judge: Any, images: torch.Tensor, label: str) -> float:
    with torch.no_grad():
        pred = judge(images).argmax(dim=1)
    return 100.0 * float((pred == judge.classes.index(label)).float().mean())


def test_cli_styles_mode_end_to_end(run_cli: Any, tiny_sd1: Path, judge_weights: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No artist file: the tiny world's styles play the artists; without the AlexNet weights LPIPS is left out
    and said so; the style accuracy columns equal the style head applied to the cached images."""
    import cadkit.metrics.lpips as lp
    from cadkit.errors import CadkitError

    def offline(*a: Any, **k: Any) -> Any:
        raise CadkitError("LPIPS backbone weights alexnet-owt-7be5be79.pth are not available (offline)")

    monkeypatch.setattr(lp, "lpips_alex", offline)
    out = tmp_path / "run"
    res = run_cli("bench", "erase-artists", "--model", tiny_sd1, "--artists", "solid,striped", "--images-per-class", "2",
                  "--ratio", "5%", "--judge", "tiny", "--judge-weights", judge_weights, *FAST, "--out", out)
    assert res.code == 0, res
    data = json.loads((out / "results.json").read_text())
    assert [t["name"] for t in data["tables"]] == ["erase-artists", "erase-artists-cad"]
    assert [r["model"] for r in data["tables"][0]["rows"]] == ["base", "CAD-Erase"]
    rows = {r["target"]: r for r in data["tables"][1]["rows"]}
    assert list(rows) == ["solid", "striped", "mean"]
    assert all(r["lpips_target"] is None and r["lpips_others"] is None for r in rows.values())
    report = (out / "report.md").read_text()
    assert "LPIPS: not computed" in report and "alexnet" in report
    from cadkit.data import class_prompts
    from cadkit.tiny.judge import style_classifier

    judge = style_classifier(judge_weights)
    recs = class_prompts(["solid", "striped"], 2, "an image in {class} style")
    assert [r.prompt for r in recs][:1] == ["an image in solid style"]
    by = {s: [r for r in recs if r.cls == s] for s in ("solid", "striped")}
    conds = data["conditions"]
    for target, other in (("solid", "striped"), ("striped", "solid")):
        base_t = percent_of(judge, condition_images(out, conds["base"], by[target]), target)
        edit_t = percent_of(judge, condition_images(out, conds[f"CAD-Erase {target}"], by[target]), target)
        edit_o = percent_of(judge, condition_images(out, conds[f"CAD-Erase {target}"], by[other]), other)
        assert rows[target]["base_acc_target"] == pytest.approx(base_t)
        assert rows[target]["acc_target"] == pytest.approx(edit_t)
        assert rows[target]["acc_others"] == pytest.approx(edit_o)
        assert conds[f"CAD-Erase {target}"]["concept"] == f"an image in {target} style"


def test_lpips_per_artist_equals_direct(tiny_sd1: Path, tmp_path: Path) -> None:
    from cadkit.benchmarks.framework import BenchOptions, run_suite
    from cadkit.data import load_prompts
    from cadkit.metrics.lpips import lpips_alex

    prompts = write_artists(tmp_path / "artists.csv")
    net = lpips_alex(pretrained_backbone=False)  # random backbone: fine for plumbing, never the default
    opts = BenchOptions(model=str(tiny_sd1), steps=1, attr_timesteps=1, batch_size=4, ratio=0.05, out=str(tmp_path / "run"),
                        prompts=str(prompts), extra=dict(artists="Pablo Picasso,vincent van gogh", limit=2),
                        networks=dict(lpips_net=net))
    res, out = run_suite("erase-artists", opts)
    rows = {r["target"]: r for r in res.tables[1].rows}
    assert list(rows) == ["Pablo Picasso", "Vincent van Gogh", "mean"]
    summary = res.tables[0].rows[1]  # the CAD-Erase row of the one-row-per-model table: the same numbers
    assert summary["model"] == "CAD-Erase" and summary["mean:target"] == pytest.approx(rows["mean"]["lpips_target"])
    data = json.loads((out / "results.json").read_text())
    recs = load_prompts(prompts, artists="Pablo Picasso,Vincent van Gogh")
    assert [r.seed for r in recs] == [3000, 3007, 3014, 3021]
    base = condition_images(out, data["conditions"]["base"], recs)
    for target in ("Pablo Picasso", "Vincent van Gogh"):
        cond = data["conditions"][f"CAD-Erase {target}"]
        assert cond["concept"] == f"a photo in the style of {target}"
        edited = condition_images(out, cond, recs)
        with torch.no_grad():  # one batch, as the suite's metric sees it (float32 round-off depends on the batch)
            d = net(base * 2 - 1, edited * 2 - 1).reshape(-1).double()
        mine = [i for i, r in enumerate(recs) if r.artist == target]
        other = [i for i, r in enumerate(recs) if r.artist != target]
        assert rows[target]["lpips_target"] == pytest.approx(float(d[mine].mean()), rel=1e-6)
        assert rows[target]["lpips_others"] == pytest.approx(float(d[other].mean()), rel=1e-6)
        assert rows[target]["lpips_target"] > 0
    assert "base_acc_target" not in rows["mean"]


@pytest.mark.parametrize("case", ["unknown-style", "unknown-artist", "unet-no-target", "lpips-offline"])
def test_bad_inputs(case: str, run_cli: Any, tiny_sd1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cadkit.metrics.lpips as lp
    from cadkit.errors import CadkitError

    def offline(*a: Any, **k: Any) -> Any:
        raise CadkitError("LPIPS backbone weights alexnet-owt-7be5be79.pth are not available (offline)")

    monkeypatch.setattr(lp, "lpips_alex", offline)
    prompts = write_artists(tmp_path / "artists.csv")
    if case == "lpips-offline":  # with an artist file (SD protocol) LPIPS is the metric: no silent fallback
        args, needles = ["--prompts", str(prompts)], ["LPIPS", "alexnet"]
    elif case == "unknown-style":
        args, needles = ["--artists", "solid,cubist"], ["--artists", "cubist"]
    elif case == "unknown-artist":
        args, needles = ["--prompts", str(prompts), "--artists", "Claude Monet"], ["--artists", "Claude Monet"]
    else:
        args = ["--prompts", str(prompts), "--unet", str(tiny_sd1 / "unet")]
        needles = ["--target", "Rembrandt"]
    out = tmp_path / "run"
    res = run_cli("bench", "erase-artists", "--model", tiny_sd1, *FAST, "--out", out, *args)
    assert_one_line_error(res, *needles, code=1 if case == "lpips-offline" else 2)  # an unavailable network is a runtime failure
    assert not out.exists()


def test_concepts_together_one_equals_single_and_two_report(run_cli: Any, tiny_sd1: Path, judge_weights: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``--concepts``: with one style the CAD (sum) edit is the single-style edit bit for bit and judges the same; two
    styles give one joint edit per method whose table cells equal the style head on the cached images; bad input is
    one line, exit 2, nothing written."""
    import cadkit.metrics.lpips as lp
    from cadkit.editing import load_edit
    from cadkit.errors import CadkitError

    def offline(*a: Any, **k: Any) -> Any:
        raise CadkitError("LPIPS backbone weights are not available (offline)")

    monkeypatch.setattr(lp, "lpips_alex", offline)
    common = ["bench", "erase-artists", "--model", tiny_sd1, "--artists", "solid,striped,dotted", "--images-per-class", "2",
              "--ratio", "5%", "--judge", "tiny", "--judge-weights", judge_weights, *FAST]
    single, one = tmp_path / "single", tmp_path / "one"
    assert run_cli(*common, "--out", single).code == 0
    res = run_cli(*common, "--out", one, "--concepts", "striped")
    assert res.code == 0, res
    cs = json.loads((single / "results.json").read_text())["conditions"]["CAD-Erase striped"]
    co = json.loads((one / "results.json").read_text())
    c1 = co["conditions"]["CAD-Erase (sum) striped"]
    a, b = load_edit(cs["edit"]), load_edit(c1["edit"])
    assert a.content_hash() == b.content_hash() and c1["images_sha256"] == cs["images_sha256"]
    t = co["tables"][0]
    assert t["name"] == "erase-artists-together"
    row = {r["model"]: r for r in t["rows"]}["CAD-Erase (sum)"]
    assert row["erased:striped"] == cs["values"]["style-accuracy"]["striped"]
    assert row["retain:mean"] == pytest.approx((cs["values"]["style-accuracy"]["solid"] + cs["values"]["style-accuracy"]["dotted"]) / 2)

    two = tmp_path / "two"
    res = run_cli(*common, "--out", two, "--concepts", "dotted,solid", "--methods", "cad,uce")
    assert res.code == 0, res
    data = json.loads((two / "results.json").read_text())
    t = data["tables"][0]
    assert [r["model"] for r in t["rows"]] == ["base", "CAD-Erase (sum)", "UCE"]
    assert [k for k, _ in t["columns"]][:4] == ["model", "erased:dotted", "erased:solid", "erased:mean"]
    from cadkit.data import class_prompts
    from cadkit.tiny.judge import style_classifier

    judge = style_classifier(judge_weights)
    recs = class_prompts(["solid", "striped", "dotted"], 2, "an image in {class} style", base_seed=0)
    for r in recs:
        r.artist, r.cls = r.cls, None
    for label in ("CAD-Erase (sum)", "UCE"):
        imgs = condition_images(two, data["conditions"][f"{label} dotted + solid"], recs)
        for style in ("dotted", "striped"):
            sel = [i for i, r in enumerate(recs) if r.artist == style]
            key = "erased:dotted" if style == "dotted" else "retain:striped"
            assert {r["model"]: r for r in t["rows"]}[label][key] == pytest.approx(percent_of(judge, imgs[sel], style))
    # bad input: one line, exit 2, nothing written
    for extra, needle in ((["--concepts", "solid,solid"], "twice"), (["--concepts", "plaid"], "plaid"),
                          (["--combine", "union"], "--combine"), (["--concepts", "solid", "--combine", "max"], "max")):
        out = tmp_path / "bad"
        assert_one_line_error(run_cli(*common, "--out", out, *extra), needle)
        assert not out.exists()
