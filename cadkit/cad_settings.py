"""CAD's settings as the paper and its official code use them, declared once.

Every default of CAD anywhere in cadkit (the attribution API, ``cadkit attribute`` / ``verify``, the
``cad`` method, the benchmarks, the registry's SD entries) is read from :data:`PAPER`; a model that
needs other values (the embedded ``tiny``: ``attn2``, 5 %, 25 timesteps) overrides them in
``cadkit.models.registry``, never by writing a second copy of a default.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CADSettings", "PAPER"]


@dataclass(frozen=True)
class CADSettings:
    """CAD-Erase / CAD-Amplify settings.

    ``modules``: module groups attributed and edited (the paper: the feed-forward layers, ``ff``);
    ``ratio``: fraction of each row's entries an edit changes (0.1 %); ``timesteps``: sampling steps of
    each concept trajectory, every step attributed (50); ``guidance``: CFG of those trajectories (3);
    ``samples``: trajectories per concept (1); ``base_prompt``: ``c_base`` of the erase objective ("");
    ``pair_design``: which (x_t, t) pairs enter the erase objective (``trajectories``); ``nudity_ratio``: the
    ratio of the paper's nudity edits (0.075 %, Table 2; the I2P / MMA / Ring-A-Bell / COCO suites)."""

    modules: str = "ff"
    ratio: float = 0.001
    timesteps: int = 50
    guidance: float = 3.0
    samples: int = 1
    base_prompt: str = ""
    pair_design: str = "trajectories"
    nudity_ratio: float = 0.00075


#: The paper's settings (Appendix C; the official code's defaults).
PAPER = CADSettings()
