"""Missed calls: call-back tasks, the redistribution policy and their read model."""

from dispatch.core.capability import Capability, Deps
from dispatch.missed_calls import policy, presence, read_model

MISSED_CALLS: Capability[Deps] = Capability(
    "missed_calls",
    handlers={**policy.HANDLERS, **presence.HANDLERS},
    projections=(read_model.projections,),
    reactors=(policy.reactors,),
)
"""Call-back tasks for abandoned calls, closed when the caller gets through."""
