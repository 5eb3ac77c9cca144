"""Attribution: objectives, (sample, t) pairs, the Lightning loop, score files."""

from cadkit.attribution.cad import CAD, AttributionResult, validate_attribution_args
from cadkit.attribution.objectives import OBJECTIVES, amplify_objective, erase_objective
from cadkit.attribution.scores import load_scores, param_set_hash, read_metadata, save_scores
from cadkit.attribution.trainer import make_trainer

__all__ = [
    "CAD", "AttributionResult", "validate_attribution_args", "OBJECTIVES", "amplify_objective", "erase_objective",
    "load_scores", "param_set_hash", "read_metadata", "save_scores", "make_trainer",
]
