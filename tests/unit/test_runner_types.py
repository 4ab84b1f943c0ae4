"""The event types runners declare (`types`, eventstore/subscriptions.py) name real event types.

A misspelt or renamed type would make the store skip that type for the runner silently.
"""

from __future__ import annotations

import pytest

import dispatch  # noqa: F401 (imports every capability, and with it every event type)
from dispatch.core.messages import EVENT_TYPES
from dispatch.customers.read_model import CallersProjection
from dispatch.intake.sms import SmsIntakePolicy
from dispatch.knowledge.self_service import SelfServicePolicy
from dispatch.linking.policy import LinkingPolicy
from dispatch.linking.read_model import LinksProjection
from dispatch.missed_calls.policy import GotThroughPolicy, MissedCallPolicy
from dispatch.missed_calls.read_model import CallsProjection
from dispatch.notify.outbox import AcknowledgementPolicy
from dispatch.org.moves import CaseRouter
from dispatch.places.locate import AddressLocator
from dispatch.supervision.chasing import CaseFollowUp
from eventstore.subscriptions import types_of

TYPED = (CallersProjection, SmsIntakePolicy, SelfServicePolicy, LinkingPolicy, LinksProjection,
         GotThroughPolicy, MissedCallPolicy, CallsProjection, AcknowledgementPolicy, CaseRouter,
         AddressLocator, CaseFollowUp)


@pytest.mark.parametrize("runner", TYPED, ids=lambda r: r.name)
def test_each_declared_type_is_an_event_type(runner: type) -> None:
    types = types_of(runner)
    assert types is not None
    assert types - EVENT_TYPES.keys() == set()


def test_a_runner_declares_no_types_or_a_non_empty_set_of_names() -> None:
    class Plain:
        name = "plain"

    class Empty:
        types: frozenset[str] = frozenset()

    class Listed:
        types = ("CaseRegistered",)

    assert types_of(Plain) is None
    for bad in (Empty, Listed):
        with pytest.raises(ValueError, match="types"):
            types_of(bad)
