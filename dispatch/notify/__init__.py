"""Notifications: the outbox, its sender and the providers it sends through."""

from dispatch.core.capability import Capability, Deps
from dispatch.notify import outbox, sender

NOTIFY: Capability[Deps] = Capability(
    "notify",
    handlers=outbox.HANDLERS,
    reactors=(outbox.reactors,),
    workers=(sender.workers,),
)
"""Requesting notifications (outbox), acknowledging callers, and sending."""
