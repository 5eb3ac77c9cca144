"""Attribution: objectives, (sample, t) pairs, the Lightning loop, score files, verification."""

from cadkit.attribution.cad import CAD, AttributionResult, AttributionSpec, validate_attribution_args
from cadkit.attribution.objectives import OBJECTIVES, Objective, amplify_objective, erase_objective, get_objective
from cadkit.attribution.scores import load_scores, param_set_hash, read_metadata, save_scores
from cadkit.attribution.trainer import TrainerSettings, make_trainer

__all__ = [
    "CAD", "AttributionResult", "AttributionSpec", "validate_attribution_args", "OBJECTIVES", "Objective", "get_objective",
    "amplify_objective", "erase_objective", "load_scores", "param_set_hash", "read_metadata", "save_scores", "make_trainer",
    "TrainerSettings",
]
