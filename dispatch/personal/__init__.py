"""Personal data with an end: erasure of a data subject (crypto-shredding), retention, subject access."""

from dispatch.core.capability import Capability, Deps
from dispatch.personal import erasure

PERSONAL_DATA: Capability[Deps] = Capability("personal", handlers={**erasure.HANDLERS})
"""Erasing a subject; the keys themselves are the event store's (`eventstore/shredding.py`)."""
