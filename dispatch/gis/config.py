"""How automatic dispatch is configured (the settings build it once, at start)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dispatch.core.errors import InvalidConfig, check_number
from dispatch.gis.nearest import DispatchWeights
from dispatch.gis.skills import CATEGORY_SKILLS

DEFAULT_SKILLS: dict[str, str] = {c: CATEGORY_SKILLS[c].required for c in ("power_fault", "voltage_anomaly")}
"""The categories dispatched automatically by default, and the skill each needs (`dispatch.gis.skills`)."""


@dataclass(frozen=True, slots=True)
class AutoDispatchConfig:
    """What automatic dispatch takes and how it chooses.

    `skills`: the categories it dispatches and the skill each needs (none: it is
    off); above `surge_threshold` waiting cases it assigns them in one batch;
    `weights` score the candidates.
    """

    skills: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SKILLS))
    surge_threshold: int = 5
    weights: DispatchWeights = field(default_factory=DispatchWeights)

    def __post_init__(self) -> None:
        check_number("surge_threshold", self.surge_threshold, 0, whole=True)
        if not all(category and skill for category, skill in self.skills.items()):
            raise InvalidConfig("skills", "must be category:skill pairs (or off)")
