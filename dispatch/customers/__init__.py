"""Who is calling: the customer registry, callers' contacts and the caller card."""

from dispatch.core.capability import Capability, Deps
from dispatch.customers import contacts, read_model, registry

CUSTOMERS: Capability[Deps] = Capability(
    "customers",
    handlers={**registry.HANDLERS, **contacts.HANDLERS},
    projections=(read_model.projections,),
)
"""Tiers of numbers (VIP, important, blacklisted) as events; the caller card's read model."""
