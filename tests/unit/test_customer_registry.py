"""The customer registry's rules: tiers, reasons, expiry, the derived elderly tier, idempotence,
loading from reference data, and the case search filter that keeps units to their own cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.core.clock import FakeClock
from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import from_recorded
from dispatch.customers.reference import properties_of, set_command
from dispatch.customers.registry import (
    CustomerEntry,
    CustomerTierSet,
    SetCustomerTier,
    active,
    customer_stream,
    decide_set_tier,
    effective_tier,
    fold,
    set_customer_tier,
)
from eventstore.memory import MemoryEventStore
from gateway.auth import Principal
from gateway.views.cases import search_filter

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
PHONE = "13912345678"


def _set(tier: str, reason: str = "why", expires: datetime | None = None) -> SetCustomerTier:
    return SetCustomerTier(PHONE, tier, reason, "dispatcher:D001", expires)


def test_a_tier_is_recorded_with_reason_setter_and_expiry() -> None:
    until = NOW + timedelta(days=30)
    [evt] = decide_set_tier(CustomerEntry(PHONE), _set("blacklisted", "  骚扰电话 ", until), NOW)
    assert evt == CustomerTierSet(PHONE, "blacklisted", "骚扰电话", "dispatcher:D001", NOW, until)


@pytest.mark.parametrize(("cmd", "field"), [
    (_set("gold"), "tier"),
    (_set("elderly"), "tier"),  # derived from the elders' registry, never set by hand
    (_set("vip", " "), "reason"),
    (_set("blacklisted", ""), "reason"),
    (_set("important", "x" * 501), "reason"),
    (_set("vip", "x", NOW), "expires_at"),
    (_set("vip", "x", NOW - timedelta(seconds=1)), "expires_at"),
    (_set("vip", "x", datetime(2027, 1, 1)), "expires_at"),
])
def test_bad_settings_are_refused_naming_the_field(cmd: SetCustomerTier, field: str) -> None:
    with pytest.raises(InvalidCommand) as refused:
        decide_set_tier(CustomerEntry(PHONE), cmd, NOW)
    assert refused.value.field == field


def test_clearing_needs_no_reason_and_the_same_setting_writes_nothing() -> None:
    assert decide_set_tier(CustomerEntry(PHONE), _set("none", ""), NOW) == []  # already none
    entry = CustomerEntry(PHONE, "vip", "代表", "x", NOW, None, 0)
    assert decide_set_tier(entry, _set("vip", "代表 "), NOW) == []
    assert decide_set_tier(entry, _set("vip", "另一个理由"), NOW) != []
    assert decide_set_tier(entry, _set("vip", "代表", NOW + timedelta(days=1)), NOW) != []
    [cleared] = decide_set_tier(entry, _set("none", ""), NOW)
    assert isinstance(cleared, CustomerTierSet) and cleared.tier == "none"


def test_the_effective_tier_follows_expiry_and_falls_back_to_elderly() -> None:
    until = NOW + timedelta(hours=1)
    black = CustomerEntry(PHONE, "blacklisted", "骚扰", "x", NOW, until, 0)
    assert effective_tier(black, NOW, elderly=True) == "blacklisted"
    assert effective_tier(black, until - timedelta(microseconds=1), elderly=False) == "blacklisted"
    assert effective_tier(black, until, elderly=False) == "none"  # expired at that instant
    assert effective_tier(black, until, elderly=True) == "elderly"
    assert not active(black, until) and active(black, NOW)
    forever = CustomerEntry(PHONE, "vip", "代表", "x", NOW, None, 0)
    assert effective_tier(forever, NOW + timedelta(days=3650), elderly=True) == "vip"
    assert effective_tier(CustomerEntry(PHONE, "none"), NOW, elderly=True) == "elderly"
    assert effective_tier(None, NOW, elderly=False) == "none"


def test_fold_takes_the_latest_setting() -> None:
    first = CustomerTierSet(PHONE, "vip", "a", "x", NOW)
    second = CustomerTierSet(PHONE, "blacklisted", "b", "y", NOW + timedelta(1), NOW + timedelta(2))
    entry = fold(PHONE, [(first, 0), (None, 1), (second, 2)])
    assert (entry.tier, entry.reason, entry.set_by, entry.expires_at, entry.version) == (
        "blacklisted", "b", "y", NOW + timedelta(2), 2)


async def test_the_handler_keys_any_format_on_the_canonical_number_once() -> None:
    store, clock = MemoryEventStore(), FakeClock(NOW)
    cmd = SetCustomerTier("+86 139-1234-5678", "important", "多次来电", "dispatcher:D001")
    assert len(await set_customer_tier(cmd, store=store, clock=clock)) == 1
    assert await set_customer_tier(cmd, store=store, clock=clock) == []
    records = await store.read_stream(customer_stream(PHONE))
    assert [from_recorded(r) for r in records] == [
        CustomerTierSet(PHONE, "important", "多次来电", "dispatcher:D001", NOW)]
    assert records[0].metadata["actor"] == "dispatcher:D001"
    with pytest.raises(InvalidCommand):
        await set_customer_tier(SetCustomerTier("hello", "vip", "x", "a"), store=store, clock=clock)


def test_reference_features_of_kind_customer() -> None:
    feature = {"type": "Feature", "geometry": None, "properties": {
        "kind": "customer", "phone": 13912345678, "tier": "blacklisted", "reason": "骚扰",
        "expires_at": "2027-01-01T00:00:00+08:00"}}
    props = properties_of(feature)
    assert props is not None and properties_of({"properties": {"kind": "elder"}}) is None
    cmd = set_command(props, "loader")
    assert (cmd.phone, cmd.tier, cmd.reason, cmd.source) == (PHONE, "blacklisted", "骚扰", "loader")
    assert cmd.expires_at == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    with pytest.raises(InvalidCommand):
        set_command({"kind": "customer", "tier": "vip"}, "loader")
    with pytest.raises(InvalidCommand):
        set_command({"kind": "customer", "phone": PHONE, "expires_at": "soon"}, "loader")


def test_search_matches_a_units_personal_fields_only_on_its_own_cases() -> None:
    agent, unit = Principal("agent", "A001"), Principal("unit", "U001")
    assert search_filter(" +86 139 1234 5678 ", agent) == ("q", ("+86 139 1234 5678", PHONE,
                                                                 "%+86 139 1234 5678%"))
    assert search_filter("人民路", unit) == ("q_own", ("人民路", None, "%人民路%", "U001"))
    assert search_filter("100%_\\", agent)[1][2] == "%100\\%\\_\\\\%"
