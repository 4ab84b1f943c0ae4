"""The event store's schema: the log, idempotency keys, checkpoints, seals."""

from pathlib import Path

from eventstore.migrate import Component

EVENTSTORE = Component("eventstore", Path(__file__).parent)
"""The event store's migrations; every other component's tables come after them."""
