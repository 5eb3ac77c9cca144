"""Named models: registry name -> hub id, family, prediction type, native resolution."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ModelEntry", "REGISTRY", "tiny_path", "get_entry", "is_available"]


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry.

    ``family`` picks the adapter ("sd1", "sd2", "sdxl", "sd3", "flux"); ``prediction_type`` is what
    the denoiser predicts ("epsilon", "v_prediction" or "flow"); ``resolution`` is the native image
    side in pixels. ``erase_ratio`` and ``erase_modules`` are the default CAD-Erase ratio and module
    groups of the benchmarks (the paper: 0.1 % of the ``ff`` rows of SD-1.4).
    """

    name: str
    hub_id: str
    family: str
    prediction_type: str
    resolution: int
    description: str = ""
    revision: str | None = None
    erase_ratio: float = 0.001
    erase_modules: str = "ff"
    extra: dict[str, str] = field(default_factory=dict)


def tiny_path() -> Path:
    """Folder of the embedded ``tiny`` pipeline inside the installed package."""
    return Path(__file__).resolve().parent.parent / "tiny" / "weights" / "pipeline"


REGISTRY: dict[str, ModelEntry] = {
    e.name: e
    for e in [
        ModelEntry("sd14", "CompVis/stable-diffusion-v1-4", "sd1", "epsilon", 512, "Stable Diffusion 1.4 (the paper's main model)"),
        ModelEntry("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd1", "epsilon", 512, "Stable Diffusion 1.5"),
        ModelEntry("sd21", "stabilityai/stable-diffusion-2-1", "sd2", "v_prediction", 768, "Stable Diffusion 2.1 (768, v-prediction)"),
        ModelEntry("sd21-base", "stabilityai/stable-diffusion-2-1-base", "sd2", "epsilon", 512, "Stable Diffusion 2.1 base (512)"),
        ModelEntry("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "sdxl", "epsilon", 1024, "Stable Diffusion XL base 1.0", erase_ratio=0.0003),
        ModelEntry("sd35", "stabilityai/stable-diffusion-3.5-medium", "sd3", "flow", 1024, "Stable Diffusion 3.5 medium (MMDiT, flow matching)", erase_ratio=0.0003),
        ModelEntry("sd35-large", "stabilityai/stable-diffusion-3.5-large", "sd3", "flow", 1024, "Stable Diffusion 3.5 large (MMDiT, flow matching)", erase_ratio=0.0003),
        ModelEntry("flux-schnell", "black-forest-labs/FLUX.1-schnell", "flux", "flow", 1024, "FLUX.1 schnell (4-step, no guidance embedding)", erase_ratio=0.0003),
        ModelEntry("flux-dev", "black-forest-labs/FLUX.1-dev", "flux", "flow", 1024, "FLUX.1 dev (guidance embedding; gated, non-commercial licence)", erase_ratio=0.0003),
        # tiny: 20 DDIM steps / CFG 5 (cadkit tiny evaluate). CAD-Erase default from `cadkit bench ratio-sweep` (10 classes,
        # 20 images each): 5 % of each cross-attention (attn2) row -> mean target 13.0 %, others 89.7 %; attn2 at 4 %:
        # 22.5 / 97.0; ff rows needed 20 % (16.0 / 72.6). 0.1 % of a row narrower than 1,000 is zero entries.
        ModelEntry("tiny", "cadkit/tiny", "sd1", "epsilon", 32, "cadkit's embedded model of procedural shapes (trained by `cadkit tiny train`)",
                   erase_ratio=0.05, erase_modules="attn2", extra={"steps": "20", "guidance": "5.0"}),
    ]
}


def get_entry(name: str) -> ModelEntry | None:
    """The registry entry called ``name``, or None."""
    return REGISTRY.get(name)


def _hub_cached(hub_id: str, revision: str | None = None) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        got = try_to_load_from_cache(hub_id, "model_index.json", revision=revision)
    except Exception:
        return None
    return Path(got).parent if isinstance(got, str) else None


def is_available(entry: ModelEntry) -> tuple[bool, str]:
    """Whether ``entry`` can be loaded on this machine without a download, and where it is."""
    if entry.name == "tiny":
        p = tiny_path()
        if (p / "model_index.json").exists():
            return True, str(p)
        return False, "not built yet (run `cadkit tiny train`)"
    cached = _hub_cached(entry.hub_id, entry.revision)
    if cached is not None:
        return True, str(cached)
    return False, "not in the Hugging Face cache"
