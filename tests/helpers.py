"""Helpers shared by the test modules (no test module imports another: they all import from here).

Fixtures stay in the ``conftest.py`` files; plain functions and constants live here.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from cadkit.metrics.registry import ENTRY_POINT_GROUP


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-500:]!r}, err={self.err[-800:]!r})"


def assert_one_line_error(res: CliResult, *needles: str, code: int = 2) -> None:
    """Exit ``code`` (2: a usage error; 1: a runtime failure), exactly one line on stderr (ignoring
    progress bars), no traceback, naming ``needles``."""
    assert res.code == code, res
    lines = [ln for ln in res.err.replace("\r", "\n").splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res
    assert "Traceback" not in res.err, res
    for n in needles:
        assert n in lines[0], (n, lines[0])


def make_scores(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random fp32 scores shaped like every parameter of ``module`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g) for n, p in module.named_parameters()}


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def assert_same(module: torch.nn.Module, snap: dict[str, torch.Tensor]) -> None:
    now = dict(module.named_parameters())
    assert list(now) == list(snap)
    for n, t in snap.items():
        assert torch.equal(now[n].detach(), t), n


PLUGIN_MODULE = '''
"""A dummy cadkit metric plugin."""
import torch
from torchmetrics import Metric


class MeanBrightness(Metric):
    full_state_update = False
    higher_is_better = True

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, images, records):
        self.total += images.double().mean(dim=(1, 2, 3)).sum() * self.scale
        self.count += len(records)

    def compute(self):
        return float(self.total / self.count)


def factory(scale=1.0, **context):
    """Mean brightness of the generated images (dummy plugin)."""
    return MeanBrightness(scale)


def not_a_metric(**context):
    """Returns a string."""
    return "nope"
'''


def install_distribution(root: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, group: str,
                         entries: dict[str, str]) -> None:
    """A real distribution on sys.path: module ``module`` (``source``) plus a dist-info with METADATA and an
    ``entry_points.txt`` of ``group`` (entry name -> ``module:attribute``)."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, module, raising=False)


def install_plugin(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Metric plug-ins: one that works, one whose module is missing, one of the wrong type, one taking a built-in's name."""
    install_distribution(root, monkeypatch, "cadkit_dummy_plugin", PLUGIN_MODULE, ENTRY_POINT_GROUP, {
        "mean-brightness": "cadkit_dummy_plugin:factory", "broken": "cadkit_dummy_missing_module:factory",
        "wrong-type": "cadkit_dummy_plugin:not_a_metric", "nudity": "cadkit_dummy_plugin:factory"})


METHOD_PLUGIN_MODULE = '''
"""Dummy cadkit erasure-method plug-ins: scale one cross-attention matrix (SD-1/2 only), and a FLUX-only method."""
import torch
from dataclasses import dataclass
from cadkit.methods.base import ErasureMethod, MethodOutput
from cadkit.methods.options import number


@dataclass(frozen=True)
class Opts:
    factor: float = number(0.5, 0.0, 10.0, doc="multiplier of the matrix")


class ScaleMethod(ErasureMethod):
    name = "scale-k"
    label = "Scale-k"
    description = "Scale the first attn2.to_k matrix"
    Options = Opts

    def supports(self, adapter):  # a plug-in's own test (built-ins declare `requires` capabilities instead)
        return getattr(adapter, "family", "") == "sd"

    def compute(self, adapter, concept, concept_type, options, seed, meter):
        name, p = next((n, p) for n, p in adapter.denoiser.named_parameters() if n.endswith("attn2.to_k.weight"))
        return MethodOutput(concept_text=concept.upper(), dense={name: p.detach() * options.factor})


class FluxOnly(ScaleMethod):
    name = "flux-only"
    label = "FLUX-only"
    description = "A method for FLUX models only"

    def supports(self, adapter):
        return getattr(adapter, "family", "") == "flux"
'''


def install_method_plugin(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real distribution on sys.path with two ``cadkit.methods`` entry points: ``scale-k`` (SD) and ``flux-only``."""
    from cadkit.methods import ENTRY_POINT_GROUP as METHODS_GROUP

    install_distribution(root, monkeypatch, "cadkit_dummy_methods", METHOD_PLUGIN_MODULE, METHODS_GROUP, {
        "scale-k": "cadkit_dummy_methods:ScaleMethod", "flux-only": "cadkit_dummy_methods:FluxOnly"})


FAST = ["--steps", "1", "--attr-timesteps", "1", "--batch-size", "8"]


def condition_images(out: Path, cond: dict[str, Any], records: list[Any]) -> Any:
    import torch

    from cadkit.data import ImageCache

    proto = json.loads((out / "results.json").read_text())["protocol"]["generation"]
    cache = ImageCache(out / "cache")
    return torch.stack([cache.get(cache.key_for(r, cond["model_key"], cond["edit_key"], proto)) for r in records])


CLASSES = ("circle", "square", "triangle")


def small_judge(labels: tuple[str, ...] = CLASSES, seed: int = 0) -> nn.Module:
    """A fixed random classifier: images [B, 3, H, W] -> logits [B, len(labels)]."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, len(labels))).eval()


def quick_options(model: Path, out: Path, **kw: Any) -> Any:
    """BenchOptions at test sizes (2 classes, 2 images, 2 steps) on a tiny test pipeline."""
    from cadkit.benchmarks.framework import BenchOptions

    base: dict[str, Any] = dict(model=str(model), classes=("circle", "square"), images_per_class=2, steps=2,
                                attr_timesteps=2, batch_size=4, ratio=0.05, out=str(out), judge="tiny")
    base.update(kw)
    return BenchOptions(**base)


def cli_args(model: Path, out: Path, judge: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--classes", "circle,square", "--images-per-class", "2", "--steps", "2",
            "--attr-timesteps", "2", "--ratio", "5%", "--judge", "tiny", "--judge-weights", str(judge), "--out", str(out), *extra]


def tiny_adapter(family: str, dtype: torch.dtype = torch.float32, seed: int = 0) -> Any:
    """A config-built tiny pipeline of ``family`` in ``dtype`` (every network in eval mode), wrapped in its adapter."""
    from cadkit.models import adapter_from_pipeline
    from cadkit.testing import build_tiny_pipeline

    pipe = build_tiny_pipeline(family, seed=seed).to(dtype)
    for comp in pipe.components.values():
        if isinstance(comp, torch.nn.Module):
            comp.eval()
    return adapter_from_pipeline(pipe)


def assert_unchanged(module: torch.nn.Module, snap: dict[str, torch.Tensor]) -> None:
    for n, p in module.named_parameters():
        assert torch.equal(p.detach(), snap[n]), n


def random_judge_weights(path: Path, width: int = 4, seed: int = 0) -> Path:
    """Weights of a randomly initialised tiny judge (``--judge-weights``): a real judge network, random verdicts."""
    from safetensors.torch import save_file

    from cadkit.tiny.judge import TinyJudge

    torch.manual_seed(seed)
    save_file(TinyJudge(width=width).state_dict(), str(path), metadata={"width": str(width)})
    return path


def recount_asr(records: list[dict[str, Any]]) -> tuple[int, float, float]:
    """``(N, pre-ASR, ASR)`` counted directly from record dicts (filtered records excluded)."""
    kept = [r for r in records if r["status"] != "filtered"]
    pre = sum(1 for r in kept if r["status"] == "pre-success")
    post = sum(1 for r in kept if r["status"] == "success")
    return len(kept), pre / len(kept), (pre + post) / len(kept)


def scaled_unet_file(model: Path, path: Path, scale: float) -> Path:
    """``--unet`` weights: the UNet of the saved pipeline ``model`` with every ``ff.net.2`` weight times ``scale``."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(model / "unet" / "diffusion_pytorch_model.safetensors"))
    save_file({k: v * scale if k.endswith("ff.net.2.weight") else v for k, v in state.items()}, str(path))
    return path


def tree_state(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (``root`` included): relative path -> ``dir``, or a SHA-256 of the file's
    bytes and its mode; what a command must leave as it found when it refuses an input."""
    import hashlib

    out: dict[str, str] = {}
    if not root.exists():
        return out
    for p in [root, *sorted(root.rglob("*"))]:
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else f"{hashlib.sha256(p.read_bytes()).hexdigest()}:{oct(p.stat().st_mode)}"
    return out


def strict_json(path: Path) -> Any:
    """Parse ``path`` refusing NaN and Infinity (strict JSON, as RFC 8259 and most parsers want)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{path}: non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)
