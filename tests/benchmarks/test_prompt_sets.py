"""``--prompt-set names|paraphrases`` on the erasure suites: rows keep their seeds and take their class's
paraphrases in turn; a paraphrase run judges images of those prompts (equal to an independent generation
with the taught model) while its edits are the names run's edits bit for bit; ``names`` leaves the protocol
as it was; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import assert_one_line_error, tree_state

TINY_ARGS = ["--model", "tiny", "--classes", "circle,square", "--images-per-class", "2", "--steps", "2", "--attr-timesteps", "2",
             "--ratio", "5%"]


def test_paraphrased_rows_keep_seeds_and_cycle() -> None:
    from cadkit.benchmarks.framework import BenchOptions
    from cadkit.benchmarks.framework.prompt_sets import paraphrased, paraphrased_grid
    from cadkit.benchmarks.suites.canvas import canvas_records
    from cadkit.data import class_prompts
    from cadkit.tiny.paraphrases import OBJECT_PARAPHRASES, STYLE_PARAPHRASES

    recs = class_prompts(["star", "ring"], 5, "an image of a {class}", base_seed=3)
    names = BenchOptions(model="tiny")
    assert paraphrased(names, recs, "object") == recs
    para = paraphrased(BenchOptions(model="tiny", extra={"prompt_set": "paraphrases"}), recs, "object")
    assert [(r.seed, r.cls, r.index) for r in para] == [(r.seed, r.cls, r.index) for r in recs]
    for cls in ("star", "ring"):
        got = [r.prompt for r in para if r.cls == cls]
        ps = OBJECT_PARAPHRASES[cls]
        assert got == [ps[j % len(ps)] for j in range(5)]
    grid = canvas_records(["star", "heart"], ["dotted", "solid"], 3, "a {object} in {style} style", 0)
    pg = paraphrased_grid(BenchOptions(model="tiny", extra={"prompt_set": "paraphrases"}), grid)
    assert [r.seed for r in pg] == [r.seed for r in grid]
    for r in pg:
        assert r.prompt.split(" ")[0] in ("a", "an") and r.cls not in r.prompt and r.extra["style"] not in r.prompt
        assert any(r.prompt == f"{op} {sp}" for op in OBJECT_PARAPHRASES[str(r.cls)] for sp in STYLE_PARAPHRASES[r.extra["style"]])


@pytest.mark.parametrize("extra,needle", [
    (["--prompt-set", "bogus"], "prompt-set"),
    (["--prompt-set", "paraphrases", "--classes", "moon,circle"], "moon"),  # a rare class has no paraphrase set
])
def test_bad_prompt_set_is_one_line(tmp_path: Path, run_cli: Any, extra: list[str], needle: str) -> None:
    out = tmp_path / "run"
    res = run_cli("bench", "erase-objects", *TINY_ARGS, "--out", out, *extra)
    assert_one_line_error(res, "prompt-set", needle)
    assert not out.exists()


def test_paraphrases_need_a_world_with_them(tmp_path: Path, run_cli: Any, tiny_sd1: Path, judge_weights: Path) -> None:
    out = tmp_path / "run"
    csv = tmp_path / "p.csv"
    csv.write_text("case_number,prompt,class,evaluation_seed\n0,an image of a circle,circle,1\n1,an image of a square,square,2\n")
    before = tree_state(tmp_path)
    res = run_cli("bench", "erase-objects", "--model", tiny_sd1, "--classes", "circle,square", "--judge", "tiny", "--judge-weights",
                  judge_weights, "--out", out, "--prompt-set", "paraphrases")
    assert_one_line_error(res, "prompt-set", "no embedded world")
    res = run_cli("bench", "erase-objects", *TINY_ARGS, "--prompts", csv, "--out", out, "--prompt-set", "paraphrases")
    assert_one_line_error(res, "prompt-set", "--prompts")
    res = run_cli("bench", "canvas", "--model", "tiny", "--styles", "dotted,solid", "--objects", "circle,moon", "--out", out,
                  "--prompt-set", "paraphrases")
    assert_one_line_error(res, "prompt-set", "moon")
    assert tree_state(tmp_path) == before


def test_paraphrase_run_judges_paraphrases_with_the_names_edits(tmp_path: Path, run_cli: Any) -> None:
    from cadkit.benchmarks.framework.prompt_sets import paraphrased
    from cadkit.data import ImageCache, class_prompts
    from cadkit.models import load_adapter
    from cadkit.tiny.world import WORLD

    names, para = tmp_path / "names", tmp_path / "para"
    assert run_cli("bench", "erase-objects", *TINY_ARGS, "--out", names, "--prompt-set", "names").code == 0
    res = run_cli("bench", "erase-objects", *TINY_ARGS, "--out", para, "--prompt-set", "paraphrases")
    assert res.code == 0, res
    pn = json.loads((names / "protocol.json").read_text())
    pp = json.loads((para / "protocol.json").read_text())
    assert "extra.prompt_set" not in json.dumps(pn) and pp["extra.prompt_set"] == "paraphrases"
    rn = json.loads((names / "results.json").read_text())
    rp = json.loads((para / "results.json").read_text())
    for c in ("circle", "square"):  # the edit is made from the names in both runs: the same entries and values
        assert rp["conditions"][f"CAD-Erase {c}"]["edit_key"] == rn["conditions"][f"CAD-Erase {c}"]["edit_key"]
    assert rp["conditions"]["base"]["images_sha256"] != rn["conditions"]["base"]["images_sha256"]
    assert any("prompt set: paraphrases" in n for n in rp["notes"])
    # the cached base images are those of the paraphrase prompts: regenerate them independently
    from cadkit.benchmarks.framework import BenchOptions

    recs = paraphrased(BenchOptions(model="tiny", extra={"prompt_set": "paraphrases"}),
                       class_prompts(["circle", "square"], 2, "an image of a {class}", base_seed=0), "object")
    adapter = load_adapter("tiny")
    WORLD.teach_paraphrases(adapter.pipe)
    gen = pp["generation"]
    cache = ImageCache(para / "cache")
    for r in recs[:2]:
        key = cache.key_for(r, f"tiny@{pp['model_fingerprint']}", None, gen)
        cached = cache.get(key).float()
        fresh = adapter.sample([r.prompt], [r.seed], steps=gen["steps"], guidance=gen["guidance"]).images[0].float().cpu()
        assert cached.shape == fresh.shape
        assert torch.allclose(cached, fresh, atol=1 / 255 + 1e-6), r.prompt  # cache stores 8-bit images
