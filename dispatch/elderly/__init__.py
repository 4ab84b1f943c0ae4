"""Elderly alarms: the response to a one-button alarm, and the alert read model."""

from dispatch.core.capability import Capability
from dispatch.elderly import alarms, read_model
from dispatch.elderly.alarms import ElderlyDeps

ELDERLY: Capability[ElderlyDeps] = Capability(
    "elderly",
    handlers=alarms.HANDLERS,
    projections=(read_model.projections,),
    reactors=(alarms.reactors,),
)
"""Receiving device alarms, responding to them, and the alerts' read model."""
