"""The domain's schema: reference data and every read model of `dispatch`."""

from pathlib import Path

from eventstore.migrate import Component

DISPATCH = Component("dispatch", Path(__file__).parent)
"""The domain's migrations; they build on the event store's (`eventstore.migrations`)."""
