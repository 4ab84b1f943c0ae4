"""Notifications: the outbox, its sender and the providers it sends through."""

from dispatch.core.capability import Capability
from dispatch.notify import outbox, sender

NOTIFY: Capability[sender.NotifyDeps] = Capability(
    "notify",
    handlers=outbox.HANDLERS,
    reactors=(outbox.reactors,),
    workers=(sender.workers,),
)
"""Requesting notifications (outbox), acknowledging callers, and sending."""
