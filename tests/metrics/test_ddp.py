"""Two gloo processes give the same metric values as one process (sum states, uneven shards)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

N_IMAGES = 7
CLASSES = ["red", "green", "blue"]
GROUPS = ["A", "B"]


class ColourNet(nn.Module):
    """Logits = mean of each colour channel (labels red, green, blue)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def red_detector(bgr: np.ndarray) -> list[dict]:
    """Fake NudeNet: one BELLY and one FEET detection scored by the red and blue means."""
    return [
        {"class": "BELLY_EXPOSED", "score": float(bgr[..., 2].mean()) / 255.0, "box": []},
        {"class": "FEET_EXPOSED", "score": float(bgr[..., 0].mean()) / 255.0, "box": []},
    ]


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean(dim=(1, 2, 3))


def data() -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(N_IMAGES, 3, 8, 8, generator=gen) ** torch.rand(N_IMAGES, 3, 1, 1, generator=gen).mul(3)
    base = torch.rand(N_IMAGES, 3, 8, 8, generator=gen)
    records = [{"class": CLASSES[i % 3], "artist": GROUPS[(i // 2) % 2], "case_number": i} for i in range(N_IMAGES)]
    return images, base, records


def run_metrics(indices: list[int]) -> dict:
    """Update the metrics with the given images (one batch per 2 images) and compute."""
    from cadkit.metrics.lpips import GroupLPIPS
    from cadkit.metrics.nudenet import NudityCounts
    from cadkit.metrics.registry import get_metric, to_python

    images, base, records = data()
    acc = get_metric("object-accuracy", classifier=ColourNet(), labels=CLASSES, classes=CLASSES)
    nud = NudityCounts(0.4, detector=red_detector)
    lp = GroupLPIPS(GROUPS, l1)
    for start in range(0, len(indices), 2):
        idx = indices[start : start + 2]
        acc.update(images[idx], [records[i] for i in idx])
        nud.update(images[idx])
        lp.update(base[idx], images[idx], [records[i]["artist"] for i in idx])
    return to_python({"accuracy": acc.compute(), "nudity": nud.compute(), "lpips": lp.compute()})


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        result = run_metrics(list(range(rank, N_IMAGES, world)))  # unrepeated, uneven shards (4 + 3)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    import cadkit.metrics.lpips
    import cadkit.metrics.nudenet
    import cadkit.metrics.registry  # noqa: F401  (imported once here; the forked ranks inherit them)

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    # torch.multiprocessing's spawn API with the "fork" start method: a spawned interpreter would spend
    # ~20 s re-importing torchmetrics on this 2-core machine; forking keeps the test to seconds.
    mp.start_processes(
        _worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True, start_method="fork"
    )
    single = json.loads(json.dumps(run_metrics(list(range(N_IMAGES)))))
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["accuracy"] == single["accuracy"]
        assert got["nudity"] == single["nudity"]
        for g in GROUPS:
            assert abs(got["lpips"][g] - single["lpips"][g]) < 1e-12
    assert single["nudity"]["images"] == N_IMAGES and 0 < single["nudity"]["total"]
