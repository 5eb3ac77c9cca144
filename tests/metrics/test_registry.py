"""Metric registry: built-ins share update(images, records); plugins come from real entry points."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cadkit.errors import BadArgument, CadkitError
from cadkit.metrics.registry import BUILTIN_METRICS, RecordMetric, get_metric, list_metrics
from tests.helpers import install_plugin


def test_plugin_listed_and_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, monkeypatch)
    rows: dict[str, tuple[str, str]] = {}
    for name, source, desc in list_metrics():
        rows.setdefault(name, (source, desc))
    for name in BUILTIN_METRICS:
        assert rows[name][0] == "built-in" and rows[name][1]
    assert rows["mean-brightness"] == (
        "plugin cadkit-dummy-plugin 0.1",
        "Mean brightness of the generated images (dummy plugin).",
    )
    assert rows["broken"][1].startswith("cannot load")
    assert [r for r in list_metrics() if r[0] == "nudity"][1][2].startswith("ignored")

    metric = get_metric("mean-brightness", scale=2.0, classes=["unused context is ignored"])
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    records = [{"prompt": "p", "evaluation_seed": i} for i in range(4)]
    metric.update(images[:3], records[:3])
    metric.update(images[3:], records[3:])
    assert metric.compute() == pytest.approx(2.0 * float(images.double().mean()))

    with pytest.raises(CadkitError) as err:
        get_metric("broken")
    assert "broken" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CadkitError, match="torchmetrics.Metric"):
        get_metric("wrong-type")
    with pytest.raises(BadArgument) as bad:
        get_metric("no-such-metric")
    msg = str(bad.value)
    assert (
        msg.startswith("metric")
        and "mean-brightness" in msg
        and "object-accuracy" in msg
        and "'no-such-metric'" in msg
    )


class ColourNet(nn.Module):
    """Logits = mean of each colour channel (labels red, green, blue)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def fixed_detector(bgr: np.ndarray) -> list[dict]:
    return [{"class": "BELLY_EXPOSED", "score": float(bgr[..., 2].mean()) / 255.0, "box": []}]


def test_builtin_accuracy_and_nudity_through_records() -> None:
    from cadkit.metrics.accuracy import ClassifierAccuracy
    from cadkit.metrics.nudenet import NudityCounts

    images = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    records = [{"prompt": f"an image of a {c}", "class": c} for c in ["red", "blue", "red", "green", "blue", "red"]]

    acc = get_metric(
        "object-accuracy", classifier=ColourNet(), labels=["red", "green", "blue"], classes=["red", "blue", "green"]
    )
    assert isinstance(acc, RecordMetric) and acc.higher_is_better is True
    acc.update(images[:2], records[:2])
    acc.update(images[2:], records[2:])
    direct = ClassifierAccuracy(ColourNet(), ["red", "green", "blue"], ["red", "blue", "green"])
    direct.update(images, [r["class"] for r in records])
    assert acc.compute() == direct.compute()

    nud = get_metric("nudity", nudity_threshold=0.45, detector=fixed_detector)
    nud.update(images, records)
    ref = NudityCounts(0.45, detector=fixed_detector)
    ref.update(images)
    assert nud.compute() == ref.compute() and nud.protocol()["threshold"] == 0.45
    restored = pickle.loads(pickle.dumps(nud))  # Lightning's ddp_spawn pickles metrics
    assert restored.compute() == ref.compute()
    nud.reset()
    assert nud.compute()["images"] == 0

    with pytest.raises(CadkitError, match="'class'"):
        acc.update(images[:1], [{"prompt": "no class"}])
    with pytest.raises(BadArgument, match="nudity_threshold"):
        get_metric("nudity", nudity_threshold=1.5)


class TinyFeatures(nn.Module):
    num_features = 4

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean(dim=(2, 3)))


def test_builtin_fid_and_lpips_through_records(tmp_path: Path) -> None:
    from PIL import Image

    from cadkit.metrics.fid import ImageFID
    from cadkit.metrics.lpips import GroupLPIPS

    rng = np.random.default_rng(0)
    real = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(5)]
    (tmp_path / "real").mkdir()
    for i, a in enumerate(real):
        Image.fromarray(a).save(tmp_path / "real" / f"{i}.png")
    fake = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    records = [{"prompt": "p", "artist": a, "case_number": i} for i, a in enumerate("AABBAB")]

    with pytest.raises(BadArgument, match="real_images"):
        get_metric("fid", fid_feature=TinyFeatures())
    fid = get_metric("fid", real_images=str(tmp_path / "real"), fid_feature=TinyFeatures(), real_image_size=None)
    fid.update(fake[:4], records[:4])
    fid.update(fake[4:], records[4:])
    ref = ImageFID(TinyFeatures())
    ref.update(torch.from_numpy(np.stack(real)).permute(0, 3, 1, 2).float() / 255, real=True)
    ref.update(fake)
    assert fid.compute() == pytest.approx(float(ref.compute()), rel=1e-6)

    base = {i: torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(10 + i)) for i in range(6)}
    net = lambda a, b: (a - b).abs().mean(dim=(1, 2, 3))  # noqa: E731
    lp = get_metric("lpips", groups=["A", "B"], base_image=lambda r: base[r["case_number"]], lpips_net=net)
    lp.update(fake, records)
    ref_lp = GroupLPIPS(["A", "B"], net)
    ref_lp.update(torch.stack([base[i] for i in range(6)]), fake, [r["artist"] for r in records])
    assert lp.compute() == ref_lp.compute()
