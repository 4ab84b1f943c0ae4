"""Personal data with an end: erasure of a data subject (crypto-shredding), legal hold,
retention, subject access."""

from dispatch.core.capability import Capability
from dispatch.personal import erasure, hold, retention

PERSONAL_DATA: Capability[retention.RetentionDeps] = Capability(
    "personal", handlers={**erasure.HANDLERS, **hold.HANDLERS}, workers=(retention.workers,))
"""Erasing a subject, legal holds on cases, the daily retention job; the keys themselves are the
event store's (`eventstore/shredding.py`)."""
