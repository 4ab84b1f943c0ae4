"""The database schema this build applies: each component's migrations, in order."""

from __future__ import annotations

from dispatch.migrations import DISPATCH
from eventstore.migrate import Component
from eventstore.migrations import EVENTSTORE

SCHEMA: tuple[Component, ...] = (EVENTSTORE, DISPATCH)
"""What `migrate` applies at every start (and for replay, tests and benchmarks), in this order."""
