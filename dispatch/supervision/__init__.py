"""Supervision: chasing dispatched cases that are not confirmed or completed in time."""

from dispatch.core.capability import Capability, Deps
from dispatch.supervision import chasing

SUPERVISION: Capability[Deps] = Capability(
    "supervision",
    handlers=chasing.HANDLERS,
    reactors=(chasing.reactors,),
)
"""Chase timers per case and the follow-up messages they send."""
