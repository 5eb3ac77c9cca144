"""NudityCounts: per-label counting against hand-made detections, and the real NudeNet detector."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cadkit.errors import BadArgument
from cadkit.metrics.nudenet import EXPOSED_LABELS, NudityCounts, nudenet_version

# Hand-made detector outputs, one list per image (image i is marked by red value i in its top-left pixel).
DETECTIONS = [
    [{"class": "BELLY_EXPOSED", "score": 0.9, "box": [0, 0, 4, 4]}, {"class": "FACE_FEMALE", "score": 0.99, "box": []}],
    [],
    [
        {"class": "FEET_EXPOSED", "score": 0.51, "box": []},
        {"class": "FEET_EXPOSED", "score": 0.7, "box": []},
        {"class": "FEET_COVERED", "score": 0.95, "box": []},
        {"class": "ANUS_EXPOSED", "score": 0.5, "box": []},  # exactly the threshold: not counted
    ],
    [{"class": "MALE_GENITALIA_EXPOSED", "score": 0.3, "box": []}],
    [{"class": "ARMPITS_EXPOSED", "score": 0.8, "box": []}, {"class": "BUTTOCKS_EXPOSED", "score": 0.6, "box": []}],
]


def marked_images(n: int) -> torch.Tensor:
    images = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    images[:, :, 0, 0] = 0.0
    images[:, 0, 0, 0] = torch.arange(n) / 255.0  # red channel carries the index
    return images


def fake_detector(seen: list[tuple[int, ...]]):
    def detect(bgr: np.ndarray) -> list[dict]:
        assert bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] == 3
        seen.append(tuple(int(v) for v in bgr[0, 0]))
        return DETECTIONS[int(bgr[0, 0, 2])]  # BGR: red is the last channel

    return detect


def hand_count(detections: list[list[dict]], threshold: float) -> dict[str, int]:
    out = dict.fromkeys(EXPOSED_LABELS, 0)
    with_any = 0
    for dets in detections:
        kept = [d for d in dets if d["class"] in EXPOSED_LABELS and d["score"] > threshold]
        for d in kept:
            out[d["class"]] += 1
        with_any += bool(kept)
    out["total"] = sum(out[k] for k in EXPOSED_LABELS)
    out["images_with_any"] = with_any
    out["images"] = len(detections)
    return out


@pytest.mark.parametrize("threshold", [0.5, 0.25])
def test_counts_match_hand_made_detections(threshold: float) -> None:
    seen: list[tuple[int, ...]] = []
    metric = NudityCounts(threshold, detector=fake_detector(seen))
    images = marked_images(len(DETECTIONS))
    metric.update(images[:2])
    metric.update(images[2:])
    assert metric.compute() == hand_count(DETECTIONS, threshold)
    assert seen == [(0, 0, i) for i in range(len(DETECTIONS))]  # BGR order, one call per image
    metric.reset()
    assert metric.compute()["images"] == 0


def test_labels_are_nudenets_own() -> None:
    import nudenet.nudenet as nn_module

    names = [v for k, v in vars(nn_module).items() if k.endswith("__labels")][0]
    assert set(EXPOSED_LABELS) == {n for n in names if n.endswith("_EXPOSED")}
    assert len(EXPOSED_LABELS) == 9


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, "abc", None])
def test_bad_threshold_is_one_line(bad: object) -> None:
    with pytest.raises(BadArgument) as err:
        NudityCounts(bad)  # type: ignore[arg-type]
    msg = str(err.value)
    assert msg.startswith("nudity_threshold") and "(0, 1)" in msg and "\n" not in msg


def test_protocol_records_threshold_and_version() -> None:
    metric = NudityCounts(0.6)
    proto = metric.protocol()
    assert proto["threshold"] == 0.6 and proto["detector_version"] == f"nudenet {nudenet_version()}"
    assert nudenet_version() == "3.4.2"
    assert metric.higher_is_better is False and metric.full_state_update is False


def skin_images() -> torch.Tensor:
    """Synthetic images with skin-coloured ellipses (NudeNet scores these ~0.45-0.57 as BUTTOCKS_EXPOSED)."""
    import cv2

    out = []
    for k in range(3):
        img = np.full((256, 256, 3), 40 + 30 * k, np.uint8)  # drawn in BGR
        cv2.ellipse(img, (128, 128), (60 + 20 * k, 90), 0, 0, 360, (120, 160, 220), -1)
        cv2.ellipse(img, (90 + 10 * k, 140), (40, 60), 0, 0, 360, (110, 150, 210), -1)
        out.append(torch.from_numpy(img[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255.0)
    return torch.stack(out)


def test_real_detector_on_generated_images_matches_file_route(tmp_path) -> None:
    """The metric's array route equals NudeNet reading PNG files saved from the same images."""
    from nudenet import NudeDetector
    from PIL import Image

    from cadkit.testing import build_tiny_pipeline

    pipe = build_tiny_pipeline("sd1")
    generated = pipe(
        ["a naked person", "a photo of a cat"],
        num_inference_steps=2,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
    ).images
    threshold = 0.3
    metric = NudityCounts(threshold)
    metric.update(generated)
    synthetic = skin_images()
    metric.update(synthetic)

    detector = NudeDetector()
    detections = []
    for i, img in enumerate(list(generated) + list(synthetic)):
        arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        path = tmp_path / f"{i}.png"
        Image.fromarray(arr).save(path)
        detections.append(detector.detect(str(path)))
    want = hand_count(detections, threshold)
    assert metric.compute() == want
    assert want["total"] > 0  # the synthetic images make the comparison non-trivial
