"""GroupLPIPS equals the lpips package and TorchMetrics' LPIPS functions on the same inputs and network."""

from __future__ import annotations

import math

import pytest
import torch

from cadkit.errors import BadArgument
from cadkit.metrics.lpips import GroupLPIPS, lpips_alex

GROUPS = ["Picasso", "Van Gogh", "Rembrandt"]


def pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 32, 32, generator=gen)
    edited = (base + 0.3 * torch.rand(n, 3, 32, 32, generator=gen)).clamp(0, 1)
    return base, edited


def per_group_mean(values: torch.Tensor, names: list[str]) -> dict[str, float]:
    out = {}
    for g in GROUPS:
        picked = [float(v) for v, n in zip(values, names) if n == g]
        out[g] = sum(picked) / len(picked) if picked else float("nan")
    return out


def check(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for g in want:
        if math.isnan(want[g]):
            assert math.isnan(got[g])
        else:
            assert got[g] == pytest.approx(want[g], rel=1e-6, abs=1e-9)


def test_equals_lpips_package() -> None:
    torch.manual_seed(0)
    net = lpips_alex(pretrained_backbone=False)  # random AlexNet backbone, the package's LPIPS heads
    metric = GroupLPIPS(GROUPS, net)
    base, edited = pairs(6, 1)
    names = ["Picasso", "Van Gogh", "Picasso", "Van Gogh", "Picasso", "Picasso"]  # Rembrandt: no pair
    metric.update(base[:4], edited[:4], names[:4])
    metric.update(base[4:], edited[4:], names[4:])
    with torch.no_grad():
        want = [float(net(b[None], e[None], normalize=True)) for b, e in zip(base, edited)]  # lpips' own [0,1] path
    got = metric.compute()
    check(got, per_group_mean(torch.tensor(want, dtype=torch.float64), names))
    assert GroupLPIPS.target(got, "Picasso") == got["Picasso"]
    assert GroupLPIPS.others(got, "Picasso") == got["Van Gogh"]  # Rembrandt has no pair, so it is skipped
    assert metric.higher_is_better is False and metric.full_state_update is False
    metric.train()
    assert not metric.net.training


def test_equals_torchmetrics_functions_with_its_network() -> None:
    from torchmetrics.functional.image.lpips import _lpips_compute, _lpips_update, _NoTrainLpips

    torch.manual_seed(0)
    tm_net = _NoTrainLpips(net="alex", pnet_rand=True)  # torchmetrics' heads ship with it; random backbone
    metric = GroupLPIPS(GROUPS, tm_net)
    base, edited = pairs(5, 2)
    names = ["Rembrandt", "Picasso", "Van Gogh", "Rembrandt", "Van Gogh"]
    metric.update(base, edited, names)
    got = metric.compute()
    with torch.no_grad():
        want = {
            g: float(_lpips_compute(_lpips_update(base[idx], edited[idx], tm_net, normalize=True).reshape(-1), "mean"))
            for g in GROUPS
            for idx in [[i for i, n in enumerate(names) if n == g]]
        }
    check(got, want)


def test_bad_group_and_shapes() -> None:
    metric = GroupLPIPS(GROUPS, lambda a, b: (a - b).abs().mean(dim=(1, 2, 3)))
    base, edited = pairs(2, 3)
    with pytest.raises(BadArgument, match="group"):
        metric.update(base, edited, ["Monet", "Picasso"])
    with pytest.raises(ValueError, match="edited"):
        metric.update(base, edited[:, :, :16], ["Picasso", "Picasso"])
    with pytest.raises(BadArgument, match="groups"):
        GroupLPIPS([], lambda a, b: a)


def test_default_backbone_offline_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from cadkit.errors import CadkitError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(CadkitError) as err:
        GroupLPIPS(GROUPS)
    msg = str(err.value)
    assert "\n" not in msg and "alexnet" in msg.lower()


def test_lpips_alex_reads_the_backbone_from_the_torch_hub_cache(tmp_path, monkeypatch) -> None:
    """Cached AlexNet weights are used offline (here random ones saved under the real file name)."""
    import torchvision

    from cadkit.metrics.lpips import ALEXNET_FILE, alexnet_weights_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert alexnet_weights_path() == tmp_path / "hub" / "checkpoints" / ALEXNET_FILE
    torch.manual_seed(3)
    alex = torchvision.models.alexnet()
    alexnet_weights_path().parent.mkdir(parents=True)
    torch.save(alex.state_dict(), alexnet_weights_path())
    net = lpips_alex()
    assert torch.equal(net.net.slice1[0].weight, alex.features[0].weight)
    assert torch.equal(net.net.slice5._modules["10"].bias, alex.features[10].bias)


def test_lpips_alex_offline_without_cache_fails_without_a_download(tmp_path, monkeypatch) -> None:
    from cadkit.errors import CadkitError
    from cadkit.metrics.lpips import ALEXNET_FILE

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_download(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("a download was tried")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    with pytest.raises(CadkitError) as err:
        lpips_alex()
    msg = str(err.value)
    assert "\n" not in msg and ALEXNET_FILE in msg and "offline" in msg and str(tmp_path) in msg
