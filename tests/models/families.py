"""What the adapter contract (``test_adapter_contract.py``) knows about each family, independently of the adapters:
the toy family (a new family as an adapter class only), and per family its facts (prediction type, module groups,
latent shape, how its pipeline feeds the denoiser)."""

from __future__ import annotations

from typing import Any

from cadkit.models.adapters import SDAdapter


class ToyAdapter(SDAdapter):
    """A new family, as an adapter class: SD-1's pipeline under another name (registered nowhere in ``cadkit``)."""

    pipeline_class = "ToyDiffusionPipeline"
    family = "toy"


_SD_GROUPS = {"ff", "attn1", "attn2", "resnet", "all"}
#: Per contract family: the adapter family it reports, prediction type, module groups, latent shape of a 32 px image,
#: whether the condition has a pooled part, whether a negative prompt is taken, whether the pipeline runs the
#: denoiser on [uncond, cond] rows (CFG), on packed latents, and the divisor from the adapter's timestep to the
#: denoiser's.
FACTS: dict[str, dict[str, Any]] = {
    "sd1": {"family": "sd", "prediction": "epsilon", "groups": _SD_GROUPS, "latent": (4, 16, 16), "pooled": False,
            "negative": True, "cfg": True, "packed": False, "t_div": None},
    "sd2": {"family": "sd", "prediction": "v_prediction", "groups": _SD_GROUPS, "latent": (4, 16, 16), "pooled": False,
            "negative": True, "cfg": True, "packed": False, "t_div": None},
    "sdxl": {"family": "sdxl", "prediction": "epsilon", "groups": _SD_GROUPS, "latent": (4, 16, 16), "pooled": True,
             "negative": True, "cfg": True, "packed": False, "t_div": None},
    "sd3": {"family": "sd3", "prediction": "flow", "groups": {"ff", "ff_context", "attn", "attn_self", "all"},
            "latent": (16, 16, 16), "pooled": True, "negative": True, "cfg": True, "packed": False, "t_div": None},
    "flux": {"family": "flux", "prediction": "flow", "groups": {"ff", "ff_context", "attn", "all"}, "latent": (16, 16, 16),
             "pooled": True, "negative": False, "cfg": False, "packed": True, "t_div": 1000},
}
FACTS["toy"] = {**FACTS["sd1"], "family": "toy"}
CONTRACT_FAMILIES = tuple(FACTS)

#: Cheap settings per built-in method (1-2 iterations/steps).
CHEAP: dict[str, dict[str, Any]] = {
    "cad": {"modules": "attn2", "ratio": 0.05, "timesteps": 2, "batch_size": 2},
    "uce": {},
    "esd-u": {"iterations": 2, "steps": 2, "lr": 1e-3},
    "esd-x": {"iterations": 2, "steps": 2, "lr": 1e-3},
    "conceptprune": {"steps": 2, "timesteps": 2, "base_prompts": ("a photo",), "target_prompts": ("a photo of a circle",)},
    "rece": {},
    "random": {"modules": "attn2", "ratio": 0.05, "counts": "ratio"},
}
