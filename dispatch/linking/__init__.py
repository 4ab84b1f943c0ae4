"""Linking: clustering of related cases, the linking policy, incidents and their read model."""

from dispatch.core.capability import Capability
from dispatch.linking import clustering, incidents, policy, read_model

LINKING: Capability[policy.LinkingDeps] = Capability(
    "linking",
    handlers={**clustering.HANDLERS, **incidents.HANDLERS},
    projections=(read_model.projections,),
    reactors=(policy.reactors,),
)
"""Linking cases (by hand and by policy) and grouping them into incidents."""
