"""The organisation: its tree of levels, moving cases between them and routing new cases."""

from dispatch.core.capability import Capability
from dispatch.org import moves

ORG: Capability[moves.OrgDeps] = Capability("org", handlers=moves.HANDLERS, reactors=(moves.reactors,))
"""Reporting up, dispatching down and routing cases over the organisation tree."""
