"""Model resolution: registry, folders, hub ids, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadkit.errors import CadkitError
from cadkit.models import REGISTRY, resolve_model


def test_registry_entries() -> None:
    for name in ("sd14", "sd15", "sd21", "sd21-base", "sdxl", "sd35", "sd35-large", "tiny"):
        assert name in REGISTRY
    assert REGISTRY["sd21"].prediction_type == "v_prediction" and REGISTRY["sd21"].resolution == 768
    assert REGISTRY["sd14"].hub_id == "CompVis/stable-diffusion-v1-4"
    assert REGISTRY["sdxl"].hub_id == "stabilityai/stable-diffusion-xl-base-1.0"
    assert REGISTRY["sd35"].hub_id == "stabilityai/stable-diffusion-3.5-medium"


def test_folder_family_from_model_index(tiny_sd1: Path) -> None:
    r = resolve_model(str(tiny_sd1))
    assert r.family == "sd" and r.pipeline_class == "StableDiffusionPipeline" and r.local


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(CadkitError, match="model.*registry name"):
        resolve_model("nope")
    with pytest.raises(CadkitError, match="model_index.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(CadkitError, match="KandinskyPipeline"):
        resolve_model(str(tmp_path / "m"))
    with pytest.raises(CadkitError, match="not available.*HF_HUB_OFFLINE.*download"):
        resolve_model("someone/not-cached-model")


def test_models_command(run_cli) -> None:  # type: ignore[no-untyped-def]
    res = run_cli("models")
    assert res.code == 0
    for name in REGISTRY:
        assert name in res.out
