"""``amplify-objects --amplify-source``: the amplify objective on procedural renders or on generated images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cadkit.benchmarks.framework import run_suite
from cadkit.errors import CadkitError
from tests.helpers import quick_options


def _scores(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    (path,) = list((out / "scores").glob("*.safetensors"))
    return load_file(str(path))


def _reference(model: Path, images: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The amplify scores of "circle" computed directly (2 images, 2 timesteps, CFG 3, seed 0, groups of the run)."""
    from cadkit.attribution import CAD
    from cadkit.models import load_adapter
    from cadkit.models.registry import REGISTRY

    adapter = load_adapter(str(model))
    modules = REGISTRY["tiny"].erase_modules if str(model) == "tiny" else "ff"
    res = CAD(adapter, modules).attribute("circle", objective="amplify", base_prompt="", samples=2, timesteps=2, guidance=3.0,
                                          seed=0, images=images, batch_size=4)
    return dict(res)


def test_amplify_source_renders_vs_generated(tiny_sd1: Path, tmp_path: Path, judge_network) -> None:
    from cadkit.tiny.domain import OBJECTS, render_set

    runs = {}
    for src in ("renders", "generated"):
        opts = quick_options(tiny_sd1, tmp_path / src, judge_network=judge_network, classes=("circle",), amplify_images=2,
                             extra={"amplify_source": src})
        _, out = run_suite("amplify-objects", opts)
        data = json.loads((out / "results.json").read_text())
        assert data["conditions"]["CAD-Amplify circle"]["amplify_images"] == src
        runs[src] = _scores(out)
    imgs, _, _ = render_set(2, 1000, objects=[OBJECTS.index("circle")] * 2)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    for src, images in (("renders", x), ("generated", None)):
        ref = _reference(tiny_sd1, images)
        assert runs[src].keys() == ref.keys()
        assert all(torch.allclose(runs[src][k], ref[k], rtol=1e-4, atol=1e-7) for k in ref), src
    assert any(not torch.allclose(runs["renders"][k], runs["generated"][k]) for k in ref)


@pytest.mark.parametrize(("extra", "kw", "needle"), [
    ({"amplify_source": "photos"}, {}, "amplify_source"),
    ({"amplify_source": "generated"}, {"images_root": "ROOT"}, "amplify_source"),
])
def test_amplify_source_is_checked(extra: dict[str, str], kw: dict[str, str], needle: str, tiny_sd1: Path, tmp_path: Path, judge_network) -> None:
    if kw.get("images_root") == "ROOT":
        (tmp_path / "root" / "circle").mkdir(parents=True)
        kw = {"images_root": str(tmp_path / "root")}
    opts = quick_options(tiny_sd1, tmp_path / "run", judge_network=judge_network, classes=("circle",), extra=extra, **kw)
    with pytest.raises(CadkitError, match=needle):
        run_suite("amplify-objects", opts)
    assert not (tmp_path / "run").exists()


def test_amplify_source_renders_needs_a_world(tiny_sd1: Path, tmp_path: Path) -> None:
    from cadkit.benchmarks.framework import BenchOptions

    opts = BenchOptions(model=str(tiny_sd1), classes=("tench",), judge="imagenet", quick=True, out=str(tmp_path / "run"),
                        extra={"amplify_source": "renders"})
    with pytest.raises(CadkitError, match="amplify_source"):
        run_suite("amplify-objects", opts)
