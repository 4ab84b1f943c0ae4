"""What the outbox sender needs of a delivery provider; channel clients implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dispatch.core.errors import DispatchError


class DeliveryError(DispatchError):
    """A provider did not take a message; `retryable` says whether trying again may help."""

    code = "delivery_failed"

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a provider answered for an accepted message."""

    provider_id: str | None
    status: str


class Provider(Protocol):
    """Something that delivers a message or raises `DeliveryError`."""

    name: str

    async def send(self, to: str, text: str, dedup_key: str) -> Delivery:
        """Deliver one message; `dedup_key` goes to the provider as its idempotency token."""
        ...
