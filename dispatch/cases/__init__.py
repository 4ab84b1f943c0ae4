"""Cases: registration, actions, SLA and the `cases` read model."""

from dispatch.cases import actions, read_model, registration
from dispatch.core.capability import Capability

CASES: Capability[read_model.CasesDeps] = Capability(
    "cases",
    handlers={**registration.HANDLERS, **actions.HANDLERS},
    projections=(read_model.projections,),
    workers=(read_model.workers,),
)
"""Registering and acting on cases, their read model and its SLA light refresher."""
