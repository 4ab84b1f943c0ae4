"""What every capability builds on: the bus, message declarations, errors, the clock, timers."""

from dispatch.core.capability import Capability, Deps
from dispatch.core.timers import workers

TIMERS: Capability[Deps] = Capability("timers", workers=(workers,))
"""The durable timers' worker."""
