"""The knowledge base (知识库): articles as events, their read model, Chinese search, self-service answers."""

from dispatch.core.capability import Capability, Deps
from dispatch.knowledge import articles, read_model, self_service

KNOWLEDGE: Capability[Deps] = Capability(
    "knowledge",
    handlers=articles.HANDLERS,
    projections=(read_model.projections,),
    reactors=(self_service.reactors,),
)
"""Writing, reviewing and publishing articles; their read model; answering consultations from them."""
