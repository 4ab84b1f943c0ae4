"""Places: the gazetteer matcher, locating address-only cases and correcting a case's place."""

from dispatch.core.capability import Capability, Deps
from dispatch.places import locate

PLACES: Capability[Deps] = Capability("places", handlers=locate.HANDLERS, reactors=(locate.reactors,))
"""Locating cases by their address text, and agents' corrections."""
