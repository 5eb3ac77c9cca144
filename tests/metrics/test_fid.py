"""ImageFID with an injected tiny feature net: equals TorchMetrics and a numpy/scipy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cadkit.errors import BadArgument, CadkitError
from cadkit.metrics.fid import ImageFID, list_images, load_images


class TinyFeatures(nn.Module):
    """Images [B, 3, H, W] in [0, 1] -> 6 features: 2x2 average pooling then a fixed random linear map."""

    num_features = 6

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(12, self.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(nn.functional.adaptive_avg_pool2d(x, 2).flatten(1))


def numpy_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Textbook FID: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), unbiased covariances."""
    from scipy import linalg

    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_equals_torchmetrics_and_numpy_reference() -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance

    gen = torch.Generator().manual_seed(1)
    real = torch.rand(20, 3, 16, 16, generator=gen)
    fake = torch.rand(18, 3, 16, 16, generator=gen) ** 2
    net = TinyFeatures()
    metric = ImageFID(net)
    metric.update(real[:9], real=True)
    metric.update(real[9:], real=True)
    metric.update(fake)
    got = float(metric.compute())

    tm = FrechetInceptionDistance(feature=TinyFeatures())
    tm.update(real, real=True)
    tm.update(fake, real=False)
    assert got == pytest.approx(float(tm.compute()), rel=1e-6)
    with torch.no_grad():
        ref = numpy_fid(net(real).double().numpy(), net(fake).double().numpy())
    assert got == pytest.approx(ref, rel=1e-4, abs=1e-6)
    assert metric.higher_is_better is False and metric.full_state_update is False
    assert all(not p.requires_grad for p in metric.inception.parameters())


def write_pngs(folder, arrays: list[np.ndarray]) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(folder / f"{i:03d}.png")


def test_real_folder_and_rank_shards(tmp_path) -> None:
    rng = np.random.default_rng(2)
    arrays = [rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for _ in range(7)]
    write_pngs(tmp_path / "real", arrays)
    (tmp_path / "real" / "notes.txt").write_text("not an image")
    expected = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(load_images(list_images(tmp_path / "real")), expected, rtol=0, atol=0)

    whole = ImageFID(TinyFeatures())
    assert whole.add_real_folder(tmp_path / "real", batch_size=3, size=None) == 7
    direct = ImageFID(TinyFeatures())
    direct.update(expected, real=True)
    torch.testing.assert_close(whole.real_features_sum, direct.real_features_sum)
    torch.testing.assert_close(whole.real_features_cov_sum, direct.real_features_cov_sum)

    shards = [ImageFID(TinyFeatures()) for _ in range(2)]
    added = [
        m.add_real_folder(tmp_path / "real", batch_size=2, size=None, rank=r, world_size=2)
        for r, m in enumerate(shards)
    ]
    assert added == [4, 3]
    torch.testing.assert_close(shards[0].real_features_sum + shards[1].real_features_sum, whole.real_features_sum)
    torch.testing.assert_close(
        shards[0].real_features_cov_sum + shards[1].real_features_cov_sum, whole.real_features_cov_sum
    )


def test_bad_real_images_folder(tmp_path) -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(BadArgument, match="real_images"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadArgument, match="real_images") as err:
        list_images(tmp_path / "empty")
    assert "0 images" in str(err.value)
    write_pngs(tmp_path / "one", [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)])
    with pytest.raises(BadArgument, match="1 images"):
        list_images(tmp_path / "one")


def test_default_inception_offline_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(CadkitError) as err:
        ImageFID()
    msg = str(err.value)
    assert "\n" not in msg and "weights-inception-2015-12-05-6726825d.pth" in msg
