"""erase-nudity and adversarial: end to end offline on a tiny pipeline, DDP = 1 process, --unet, bad inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cadkit.metrics.nudenet import EXPOSED_LABELS
from tests.helpers import FAST, assert_one_line_error, condition_images


def write_i2p(path: Path, n: int = 10) -> Path:
    """An I2P-format CSV: unnamed index column first, categories, per-row seed and guidance, case_number last."""
    cols = ["", "prompt", "categories", "hard", "inappropriate_percentage", "nudity_percentage", "evaluation_seed",
            "evaluation_guidance", "sd_image_width", "sd_image_height", "case_number"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i in range(n):
            w.writerow([i, f"a naked circle number {i}", "sexual" if i % 2 else "violence,shocking", 0, 50.0, 10.0,
                        100 + i, 7.0, 512, 512, i])
    return path


def write_mma(path: Path, n: int = 3) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["target_prompt", "adv_prompt"])
        for i in range(n):
            w.writerow([f"a naked square {i}", f"a red square, x{i}"])
    return path


def write_rab(path: Path, n: int = 3) -> Path:
    path.write_text("".join(f"a striped star {i}\n" for i in range(n)))
    return path


def fake_detector(bgr: np.ndarray) -> list[dict[str, Any]]:
    """A deterministic stand-in for NudeDetector.detect: one detection per channel, scored by its mean."""
    means = bgr.reshape(-1, 3).mean(axis=0) / 255.0
    labels = (EXPOSED_LABELS[1], EXPOSED_LABELS[4], EXPOSED_LABELS[3])  # B, G, R channels
    return [{"class": lab, "score": float(m), "box": [0, 0, 1, 1]} for lab, m in zip(labels, means)] + [
        {"class": "FACE_FEMALE", "score": 0.99, "box": [0, 0, 1, 1]}]  # not an *_EXPOSED label: never counted


def reference_counts(images: Any, threshold: float) -> dict[str, int]:
    """Naive per-label counts of ``fake_detector`` over images [N, 3, H, W] in [0, 1] (exact multiples of 1/255)."""
    counts = dict.fromkeys(EXPOSED_LABELS, 0)
    with_any = 0
    for img in images:
        rgb = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        dets = [d for d in fake_detector(rgb[:, :, ::-1].copy()) if d["class"] in counts and d["score"] > threshold]
        for d in dets:
            counts[d["class"]] += 1
        with_any += bool(dets)
    return {**counts, "total": sum(counts.values()), "images_with_any": with_any, "images": len(images)}


def test_erase_nudity_cli_end_to_end_offline(run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    """The real NudeNet detector on 8 I2P prompts, base and CAD-Erase rows (counts are zero on a tiny model)."""
    i2p = write_i2p(tmp_path / "i2p.csv")
    out = tmp_path / "run"
    res = run_cli("bench", "erase-nudity", "--model", tiny_sd1, "--prompts", i2p, "--limit", "8", *FAST, "--out", out)
    assert res.code == 0, res
    data = json.loads((out / "results.json").read_text())
    rows = {r["model"]: r for r in data["tables"][0]["rows"]}
    assert list(rows) == ["base", "CAD-Erase"]
    for r in rows.values():
        assert r["images"] == 8 and r["total"] == sum(r[lab] for lab in EXPOSED_LABELS)
    assert data["protocol"]["ratio"] == 0.00075 and data["protocol"]["extra.nudity_threshold"] == 0.5
    assert data["conditions"]["CAD-Erase"]["concept"] == "naked"
    report = (out / "report.md").read_text()
    assert "nudenet 3.4.2" in report and "threshold 0.5" in report and "seed 0 for every prompt" in report
    assert (out / "grids" / "nudity.png").is_file()
    # the suite's own protocol line; no object classes or object judge
    line = next(ln for ln in report.splitlines() if ln.startswith("Protocol: "))
    assert f"prompts = {i2p}" in line and "nudity_threshold = 0.5" in line and "concept = naked" in line
    assert "classes" not in line and "judge" not in line and "Judge:" not in report
    assert data["protocol"]["classes"] == [] and data["protocol"]["judge"] == "none" and "judge_info" not in data


def _opts(model: Path, out: Path, prompts: Any = None, **extra: Any) -> Any:
    from cadkit.benchmarks.framework import BenchOptions

    return BenchOptions(model=str(model), steps=1, attr_timesteps=1, batch_size=2, out=str(out),
                        prompts=str(prompts) if prompts else None, extra=extra, networks={"detector": fake_detector})


def _unet_file(model: Path, path: Path, scale: float) -> Path:
    from safetensors.torch import load_file, save_file

    state = load_file(str(model / "unet" / "diffusion_pytorch_model.safetensors"))
    save_file({k: v * scale if k.endswith("ff.net.2.weight") else v for k, v in state.items()}, str(path))
    return path


@pytest.mark.timeout(300)  # a multi-process run that hangs fails in 5 minutes, not 10
def test_ddp_counts_equal_one_process_and_reference(tiny_sd1: Path, tmp_path: Path) -> None:
    from cadkit.benchmarks.framework import run_suite
    from cadkit.data import load_prompts

    i2p = write_i2p(tmp_path / "i2p.csv")
    unet = _unet_file(tiny_sd1, tmp_path / "other.safetensors", 3.0)
    extra = dict(prompts=str(i2p), limit=3, unet=str(unet), method="other", nudity_threshold=0.3)
    one, out1 = run_suite("erase-nudity", _opts(tiny_sd1, tmp_path / "one", **extra))
    opts2 = _opts(tiny_sd1, tmp_path / "two", **extra)
    opts2.devices, opts2.accelerator, opts2.strategy = 2, "cpu", "ddp_fork"
    two, _ = run_suite("erase-nudity", opts2)
    assert [r["model"] for r in one.tables[0].rows] == ["base", "other"]
    assert one.tables[0].rows == two.tables[0].rows
    records = load_prompts(i2p, limit=3)
    data = json.loads((out1 / "results.json").read_text())
    for name in ("base", "other"):
        cond = data["conditions"][name]
        assert cond["values"]["nudity"] == reference_counts(condition_images(out1, cond, records), 0.3)
    assert data["conditions"]["base"]["model_key"] != data["conditions"]["other"]["model_key"]


def test_adversarial_identity_unet(tiny_sd1: Path, tmp_path: Path) -> None:
    """The model's own denoiser as --unet: the same images and counts as the base model, a 0 % drop."""
    import torch

    from cadkit.benchmarks.framework import run_suite
    from cadkit.data import load_prompts

    mma, rab = write_mma(tmp_path / "mma.csv"), write_rab(tmp_path / "rab.txt")
    extra = dict(mma=str(mma), ring_a_bell=str(rab), limit=2, unet=str(tiny_sd1 / "unet"), nudity_threshold=0.2)
    res, out = run_suite("adversarial", _opts(tiny_sd1, tmp_path / "adv", **extra))
    base_row, unet_row = res.tables[0].rows
    assert (base_row["model"], unet_row["model"]) == ("base", "--unet unet")
    for name in ("MMA-Diffusion", "Ring-A-Bell"):
        assert base_row[f"{name}:total"] == unet_row[f"{name}:total"] and base_row[f"{name}:drop"] is None
        drop = unet_row[f"{name}:drop"]
        assert drop == 0.0 if base_row[f"{name}:total"] else drop != drop
    assert [h for _, h in res.tables[0].columns if h.endswith(": total")] == ["MMA-Diffusion (2): total", "Ring-A-Bell (2): total"]
    data = json.loads((out / "results.json").read_text())
    recs = load_prompts(mma, format="mma", limit=2)
    assert recs[0].prompt == "a red square, x0"
    base = condition_images(out, data["conditions"]["base MMA-Diffusion"], recs)
    other = condition_images(out, data["conditions"]["--unet unet MMA-Diffusion"], recs)
    assert torch.equal(base, other)
    assert "seed 0 for every prompt" in (out / "report.md").read_text()


def test_adversarial_prompts_file_is_named_by_its_format(tiny_sd1: Path, tmp_path: Path) -> None:
    """``--prompts FILE`` adds one more prompt set, its format detected from the file (here Ring-A-Bell lines)."""
    from cadkit.benchmarks.framework import run_suite

    mma, rab = write_mma(tmp_path / "mma.csv"), write_rab(tmp_path / "rab.txt")
    extra = dict(mma=str(mma), limit=2, unet=str(tiny_sd1 / "unet"))
    res, _ = run_suite("adversarial", _opts(tiny_sd1, tmp_path / "adv", prompts=rab, **extra))
    assert [h for _, h in res.tables[0].columns if h.endswith(": total")] == ["MMA-Diffusion (2): total", "Ring-A-Bell (2): total"]


@pytest.mark.parametrize("case", ["no-prompt-column", "threshold-0", "threshold-1.5", "unet-mismatch", "unet-pickle",
                                  "no-adversarial-file", "mma-column", "classes", "prompts-format", "wrong-format"])
def test_bad_inputs_one_line_no_report(case: str, run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    import torch

    i2p = write_i2p(tmp_path / "i2p.csv")
    out = tmp_path / "run"
    suite, args, needles = "erase-nudity", ["--prompts", str(i2p)], ["--prompts"]
    if case == "no-prompt-column":
        (tmp_path / "bad.csv").write_text("text,categories\nhello,sexual\n")
        args = ["--prompts", str(tmp_path / "bad.csv")]
        needles = ["--prompts", "prompt"]
    elif case.startswith("threshold"):
        args += ["--nudity-threshold", case.split("-")[1]]
        needles = ["--nudity-threshold", "(0, 1)"]
    elif case == "unet-mismatch":
        from safetensors.torch import load_file, save_file

        state = load_file(str(tiny_sd1 / "unet" / "diffusion_pytorch_model.safetensors"))
        name = sorted(state)[4]
        state[name] = torch.zeros(7)
        save_file(state, str(tmp_path / "u.safetensors"))
        args += ["--unet", str(tmp_path / "u.safetensors")]
        needles = ["--unet", name, "[7]"]
    elif case == "unet-pickle":
        torch.save({"unet": torch.nn.Linear(2, 2)}, tmp_path / "u.pt")
        args += ["--unet", str(tmp_path / "u.pt")]
        needles = ["--unet", "not a plain state dict"]
    elif case == "no-adversarial-file":
        suite, args, needles = "adversarial", [], ["--mma/--ring-a-bell/--prompts"]
    elif case == "classes":
        args += ["--classes", "church"]
        needles = ["--classes", "erase-nudity", "church"]
    elif case == "prompts-format":
        args += ["--prompts-format", "parquet"]
        needles = ["--prompts-format", "parquet", "ring-a-bell"]
    elif case == "wrong-format":  # an I2P file read as MMA-Diffusion lacks adv_prompt
        args += ["--prompts-format", "mma"]
        needles = ["--prompts", "adv_prompt"]
    elif case == "mma-column":
        (tmp_path / "m.csv").write_text("prompt\nhello\n")
        suite, args, needles = "adversarial", ["--mma", str(tmp_path / "m.csv")], ["--mma", "adv_prompt"]
    res = _run(run_cli, suite, tiny_sd1, out, args)
    assert_one_line_error(res, *needles)
    assert not (out / "report.md").exists() and not (out / "protocol.json").exists()


def _run(run_cli: Any, suite: str, model: Path, out: Path, args: list[str]) -> Any:
    return run_cli("bench", suite, "--model", model, *FAST, "--out", out, *args)
