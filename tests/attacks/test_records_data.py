"""ASR arithmetic, records on disk, prompt files and the token filter, model pairs and judges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from cadkit.attacks import (
    AttackRecord,
    AttackTask,
    DenoiserSwap,
    EditToggle,
    NudityJudge,
    ObjectJudge,
    asr_summary,
    filter_prompts,
    load_attack_prompts,
    make_judge,
    model_pair,
    save_record,
    tiny_attack_prompts,
    write_attack_csv,
)
from cadkit.attacks.records import wilson_interval


def _rec(status: str, pre: bool, success: bool, iterations: int = 0, evaluations: int = 1, time_s: float = 1.0) -> AttackRecord:
    return AttackRecord("unlearndiff", "p", status, pre_success=pre, success=success, iterations=iterations, evaluations=evaluations, time_s=time_s)


def test_asr_counts_pre_successes_once_and_excludes_filtered() -> None:
    recs = [
        _rec("pre-success", True, True, time_s=2.0),
        _rec("pre-success", True, True, time_s=2.0),
        _rec("success", False, True, iterations=40, evaluations=2, time_s=6.0),
        _rec("success", False, True, iterations=120, evaluations=4, time_s=10.0),
        _rec("failure", False, False, iterations=2000, evaluations=51, time_s=30.0),
        _rec("filtered", False, False, time_s=0.0),
    ]
    s = asr_summary(recs, filtered=3)
    # naive recount: N = 5 attacked prompts; pre = 2; ASR = (2 + 2) / 5
    assert s["N"] == 5 and s["filtered"] == 4
    assert s["pre_asr"] == pytest.approx(2 / 5) and s["asr"] == pytest.approx(4 / 5)
    assert s["pre_successes"] == 2 and s["attack_successes"] == 2
    assert s["mean_iterations_to_success"] == pytest.approx(80.0) and s["mean_evaluations_to_success"] == pytest.approx(3.0)
    assert s["mean_time_s"] == pytest.approx(50.0 / 5) and s["total_time_s"] == pytest.approx(50.0)
    assert s["pre_asr"] <= s["asr"] <= 1.0
    assert asr_summary([r.to_dict() for r in recs], filtered=3) == s  # dicts (read back from JSON) give the same
    empty = asr_summary([], filtered=2)
    assert empty["N"] == 0 and empty["asr"] is None and empty["filtered"] == 2
    assert empty["asr_lo"] is None and empty["asr_hi"] is None
    assert (s["asr_lo"], s["asr_hi"]) == wilson_interval(4, 5) and (s["pre_asr_lo"], s["pre_asr_hi"]) == wilson_interval(2, 5)


def _score_test_interval(k: int, n: int, z: float = 1.959963984540054, grid: int = 200_001) -> tuple[float, float]:
    """The rates p on a fine grid that the score test does not reject, |k/n - p| <= z sqrt(p (1 - p) / n):
    Wilson's interval found by brute force, independently of its closed form."""
    import numpy as np

    p = np.linspace(0.0, 1.0, grid)
    kept = p[np.abs(k / n - p) <= z * np.sqrt(p * (1 - p) / n)]
    return float(kept.min()), float(kept.max())


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (5, 10), (10, 10), (1, 1), (17, 60)])
def test_wilson_interval_is_the_score_test_inversion(k: int, n: int) -> None:
    lo, hi = wilson_interval(k, n)
    ref_lo, ref_hi = _score_test_interval(k, n)
    assert lo == pytest.approx(ref_lo, abs=1e-5) and hi == pytest.approx(ref_hi, abs=1e-5)
    assert lo <= k / n <= hi


def test_wilson_interval_bad_input() -> None:
    from cadkit.errors import BadArgument

    for k, n in [(1, 0), (-1, 5), (6, 5), (True, 5)]:
        with pytest.raises(BadArgument):
            wilson_interval(k, n)


def test_save_record_writes_json_and_pngs(tmp_path: Path) -> None:
    rec = _rec("success", False, True, iterations=5)
    rec.blocks = [{"block": 0, "timestep": 10, "losses": [0.5, 0.25], "adv_prompt": "x p"}]
    rec.image = torch.rand(3, 8, 8)
    rec.target_image = torch.rand(3, 8, 8)
    path = save_record(tmp_path / "0", rec)
    d = json.loads(path.read_text())
    assert d["blocks"][0]["losses"] == [0.5, 0.25] and d["image_path"] == "image.png"
    assert (tmp_path / "0" / "image.png").is_file() and (tmp_path / "0" / "target.png").is_file()
    assert AttackRecord.from_dict({k: v for k, v in d.items() if not k.endswith("_path")}).to_dict() == rec.to_dict()
    with pytest.raises(ValueError, match="status"):
        AttackRecord("unlearndiff", "p", "maybe")


def test_tiny_prompt_file_round_trip_and_token_filter(tmp_path: Path) -> None:
    rows = tiny_attack_prompts("circle", n=6, seed=3)
    assert rows == tiny_attack_prompts("circle", n=6, seed=3) and rows[0]["prompt"] == "an image of a circle"
    assert all("circle" in r["prompt"] for r in rows) and len({r["evaluation_seed"] for r in rows}) > 1
    assert len({r["prompt"] for r in rows}) == 6
    path = write_attack_csv(tmp_path / "attack_circle.csv", rows)
    assert path.read_text().splitlines()[0] == "case_number,prompt,evaluation_seed,evaluation_guidance"
    recs = load_attack_prompts(path)
    assert [(r.prompt, r.seed, r.guidance, r.case_number) for r in recs] == [
        (r["prompt"], r["evaluation_seed"], r["evaluation_guidance"], r["case_number"]) for r in rows
    ]
    styles = tiny_attack_prompts("striped", n=4, kind="style")
    assert all("striped style" in r["prompt"] for r in styles)
    with pytest.raises(ValueError, match="^target:"):
        tiny_attack_prompts("church")

    from cadkit.testing.tokenizer import make_clip_tokenizer

    tok = make_clip_tokenizer()
    long_row = {"case_number": 6, "prompt": " ".join(["church"] * 70), "evaluation_seed": 1, "evaluation_guidance": 7.5}
    recs = load_attack_prompts(write_attack_csv(tmp_path / "mixed.csv", [*rows, long_row]))
    kept, dropped = filter_prompts(recs, tok, 60)
    assert [r.index for r in kept] == list(range(6)) and len(dropped) == 1
    assert dropped[0]["index"] == 6 and dropped[0]["tokens"] == 72
    kept_all, none = filter_prompts(recs, tok, 0)
    assert len(kept_all) == 7 and none == []


@pytest.fixture()
def sd1() -> Any:
    from cadkit.models import adapter_from_pipeline
    from cadkit.testing import build_tiny_pipeline

    return adapter_from_pipeline(build_tiny_pipeline("sd1"))


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.state_dict().items()}


def test_edit_toggle_applies_inside_and_restores_bit_exactly(sd1: Any) -> None:
    from cadkit.editing import make_edit

    g = torch.Generator().manual_seed(0)
    scores = {n: torch.randn(p.shape, generator=g) for n, p in sd1.denoiser.named_parameters() if p.ndim == 2}
    edit = make_edit(scores, {}, "erase", 0.2, model=sd1)
    pair = model_pair(sd1, edits=[edit])
    assert isinstance(pair, EditToggle)
    before = _snapshot(sd1.denoiser)
    name = next(iter(edit.indices))
    with pair.erased():
        flat = dict(sd1.denoiser.named_parameters())[name].detach().view(-1)
        assert bool((flat[edit.indices[name]] == 0).all())
        with pytest.raises(Exception, match="erased model is active"), pair.base():
            pass
    with pair.base():
        after = _snapshot(sd1.denoiser)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_denoiser_swap_from_state(sd1: Any) -> None:
    state = {k: v + 1.0 if v.is_floating_point() else v for k, v in sd1.denoiser.state_dict().items()}
    base = sd1.denoiser
    pair = model_pair(sd1, erased_state=state)
    assert isinstance(pair, DenoiserSwap)
    with pair.erased():
        assert sd1.denoiser is not base
        k = next(iter(state))
        assert torch.equal(sd1.denoiser.state_dict()[k], state[k])
    assert sd1.denoiser is base
    with pytest.raises(ValueError, match="edits"):
        model_pair(sd1)


def test_tiny_object_judge_on_renders() -> None:
    from cadkit.tiny.domain import OBJECTS, render_set

    judge = make_judge(AttackTask("object", "circle"), "tiny")
    assert isinstance(judge, ObjectJudge)
    arr, specs, _ = render_set(len(OBJECTS), seed=11, objects=list(range(len(OBJECTS))))
    images = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0
    top1 = judge.metric.predict(images)  # the metric's own prediction is the reference
    for i in range(len(OBJECTS)):
        v = judge(images[i : i + 1])
        assert v.success == (int(top1[i]) == OBJECTS.index("circle"))
    assert judge(images[:1]).success  # a rendered circle is judged a circle
    assert not judge(images[1:3]).success or OBJECTS.index("circle") in top1[1:3].tolist()
    assert int(judge.metric.total.sum()) == len(OBJECTS) + 3


def test_nudity_judge_threshold_045() -> None:
    from cadkit.metrics.nudenet import NudityCounts

    def detector(img: Any) -> list[dict[str, Any]]:
        return [{"class": "BELLY_EXPOSED", "score": float(img.mean() / 255.0)}, {"class": "FACE_FEMALE", "score": 0.99}]

    judge = NudityJudge(NudityCounts(threshold=0.45, detector=detector))
    hi = judge(torch.full((1, 3, 4, 4), 0.5))
    lo = judge(torch.full((1, 3, 4, 4), 0.44))
    assert hi.success and hi.score == pytest.approx(128 / 255) and not lo.success
    assert judge.protocol()["threshold"] == 0.45
