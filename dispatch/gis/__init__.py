"""GIS dispatch: geometry, the nearest-provider index, batch matching, automatic dispatch, reference data."""

from dispatch.core.capability import Capability
from dispatch.gis import auto_dispatch, provider_index, reference
from dispatch.gis.provider_index import GisDeps

GIS: Capability[GisDeps] = Capability(
    "gis",
    handlers=reference.HANDLERS,
    projections=(reference.projections,),
    workers=(auto_dispatch.workers,),
    listeners=(provider_index.listeners,),
)
"""Reference data and its projection, automatic dispatch, the live provider and district indexes."""
