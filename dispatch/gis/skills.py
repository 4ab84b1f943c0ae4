"""Which providers a case's category needs: the one table of category -> skills.

A provider qualifies for a category when it has at least one of the category's
`skills`; the first is the skill automatic dispatch requires by default
(`INTAKE_AUTO_DISPATCH=category` without a skill takes it). `preferred` lowers a
candidate's score (`DispatchWeights.skill` per missing preferred skill). A category
not in the table is not a provider's job: it goes to a unit (a department), which the
dispatcher picks from the list of units.

| category            | skills (any one)                                   | preferred    |
|---------------------|----------------------------------------------------|--------------|
| power_fault         | power_repair, line_repair                          | line_repair  |
| voltage_anomaly     | power_repair, transformer                          | transformer  |
| elderly_emergency   | medical, elderly_care                              | elderly_care |
| elderly_care        | elderly_care, medical                              | -            |
| home_service        | appliance_repair, plumbing, locksmith, cleaning, security, power_repair | - |

So an outage or an elevator stopped by one (`power_fault`) never goes to an
elderly-care company, and an elder's medical alarm never to a power crew: their
skills do not meet (the demo's providers keep to one trade, `gis_data/generate_demo.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from dispatch.gis.nearest import Candidate, DispatchWeights, NearestQuery, ProviderSnapshot


@dataclass(frozen=True, slots=True)
class SkillNeed:
    """What a category asks of a provider (module doc)."""

    skills: tuple[str, ...]
    preferred: frozenset[str] = frozenset()

    @property
    def required(self) -> str:
        """The skill automatic dispatch requires."""
        return self.skills[0]


CATEGORY_SKILLS: dict[str, SkillNeed] = {
    "power_fault": SkillNeed(("power_repair", "line_repair"), frozenset({"line_repair"})),
    "voltage_anomaly": SkillNeed(("power_repair", "transformer"), frozenset({"transformer"})),
    "elderly_emergency": SkillNeed(("medical", "elderly_care"), frozenset({"elderly_care"})),
    "elderly_care": SkillNeed(("elderly_care", "medical")),
    "home_service": SkillNeed(("appliance_repair", "plumbing", "locksmith", "cleaning", "security",
                               "power_repair")),
}
"""The table (module doc)."""


def need_of(category: str | None) -> SkillNeed | None:
    """What `category` asks of a provider; None when it is a unit's job."""
    return CATEGORY_SKILLS.get(category or "")


def qualifies(category: str | None, skills: frozenset[str] | tuple[str, ...] | list[str]) -> bool:
    """Whether a provider with `skills` may take a case of `category` (not a provider's job: no)."""
    need = need_of(category)
    return need is not None and any(skill in need.skills for skill in skills)


def suggestions(
    snapshot: ProviderSnapshot, query: NearestQuery, need: SkillNeed, weights: DispatchWeights | None = None,
) -> list[Candidate]:
    """The providers that qualify for `need` around the query's point, best score first.

    One lookup per qualifying skill (the snapshot keeps a tree per skill), merged by provider.
    """
    best: dict[str, Candidate] = {}
    for skill in need.skills:
        asked = replace(query, skill=skill, preferred_skills=need.preferred)
        for found in snapshot.nearest(asked, weights):
            kept = best.get(found.provider_id)
            if kept is None or found.score < kept.score:
                best[found.provider_id] = found
    return sorted(best.values(), key=lambda c: (c.score, c.distance_m, c.provider_id))[:query.k]


def in_any_district(
    lookup: Callable[[NearestQuery], Sequence[Candidate]], query: NearestQuery,
    districts: Sequence[str | None],
    by_score: bool = False,
) -> list[Candidate]:
    """`lookup` for a point on the shared border of `districts`: it lies in each, so the providers
    serving any of them qualify; merged by provider, nearest (or `by_score`, best) first, k of them."""
    best: dict[str, Candidate] = {}
    for district in districts or [query.district]:
        for found in lookup(replace(query, district=district)):
            best.setdefault(found.provider_id, found)
    key = (lambda c: (c.score, c.distance_m, c.provider_id)) if by_score else (
        lambda c: (c.distance_m, c.provider_id))
    return sorted(best.values(), key=key)[:query.k]
