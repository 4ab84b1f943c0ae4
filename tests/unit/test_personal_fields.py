"""Which fields of an event are personal data and whose (dispatch/core/personal.py), and the
record `to_new_event` hands the store for sealing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from dispatch.cases.events import (
    CallerInfo,
    CaseLocated,
    CaseRegistered,
    CaseSupplemented,
    MatchedPlace,
    Place,
)
from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import to_new_event
from dispatch.core.personal import (
    PERSONAL,
    parse_subject,
    personal_paths,
    pseudonym,
    set_pseudonym_key,
    subject_of,
)
from dispatch.gis.reference import ReferenceRecorded
from dispatch.intake.contact import InboundContact
from dispatch.intake.sms import SmsReceived
from dispatch.intake.wechat import WeChatMessageReceived, WeChatPush
from dispatch.notify.outbox import NotificationRequested

AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def registered(**caller: str) -> CaseRegistered:
    return CaseRegistered("C1", "complaint", 3, "phone", "楼道灯坏了", CallerInfo(**caller), AT, AT,
                          address="人民路 8 号", raw={"body": "x"})


def test_a_case_registration_names_its_personal_fields_and_its_caller() -> None:
    evt = registered(name="张三", phone="+86 139-1234-5678")
    assert set(personal_paths(evt)) == {("description",), ("caller", "name"), ("caller", "phone"),
                                        ("address",), ("raw",)}
    assert subject_of(evt) == "phone:13912345678"  # canonical, whatever the format given
    new = to_new_event(evt)
    assert new.personal is not None and new.personal.subject == "phone:13912345678"
    assert new.data["caller"]["name"] == "张三"  # sealing is the store's: the data is whole here


def test_the_subject_falls_back_from_number_to_openid_to_elder() -> None:
    assert subject_of(registered(openid="oUser_42")) == "openid:oUser_42"
    elder = CaseRegistered("C2", "elderly_emergency", 1, "alarm", "一键呼叫", CallerInfo(), AT, AT,
                           elder_id="E7")
    assert subject_of(elder) == "elder:E7"


def test_values_that_are_absent_are_not_noted_and_nested_contacts_are_followed() -> None:
    contact = InboundContact("sms", "sms", "k1", CallerInfo(phone="13912345678"), AT, AT, text="停电了")
    paths = set(personal_paths(SmsReceived(contact)))
    assert paths == {("contact", "caller", "phone"), ("contact", "text"), ("contact", "extra")}
    assert subject_of(SmsReceived(contact)) == "phone:13912345678"


def test_personal_data_of_no_known_subject_gets_a_key_of_its_own() -> None:
    """An event with personal data whose subject is unknown (a supplement's text, no caller) is
    still sealed, under a subject of its own: never refused, erased with the log's retention.
    Bug: no subject at all (the append fails: there is no key to seal with)."""
    first, second = (to_new_event(CaseSupplemented("C1", "我补充一下：电话 139", AT)).personal for _ in "ab")
    assert first is not None and second is not None
    assert first.subject.startswith("event:") and second.subject.startswith("event:")
    assert first.subject != second.subject and first.paths == (("text",),)


def test_events_without_personal_data_carry_no_note_and_a_handler_can_name_the_subject() -> None:
    assert to_new_event(CaseSupplemented("C1", "我补充一下：电话 139", AT)).personal is not None
    given = to_new_event(CaseSupplemented("C1", "x", AT), subject="phone:13912345678")
    assert given.personal is not None and given.personal.subject == "phone:13912345678"
    wechat = WeChatMessageReceived(WeChatPush("gh", "oUser_42", "1", "text", content="你好"), "<xml/>")
    assert subject_of(wechat) == "openid:oUser_42"
    notice = NotificationRequested("ack:C1", "sms", "13912345678", "已受理", "C1", "ack", AT)
    assert subject_of(notice) == "phone:13912345678"


@pytest.mark.parametrize(("typed", "subject"), [
    ("139 1234 5678", "phone:13912345678"), ("+8613912345678", "phone:13912345678"),
    ("openid:oUser_42", "openid:oUser_42"), ("elder:E7", "elder:E7"), ("device:1234", "device:1234"),
    ("phone:0086 139-1234-5678", "phone:13912345678"), ("elder:xianyang:E7", "elder:xianyang:E7")])
def test_an_operator_names_a_subject_as_they_like(typed: str, subject: str) -> None:
    assert parse_subject(typed) == subject


@pytest.mark.parametrize("typed", ["", "not a number", "openid:", "name:张三", "elder: "])
def test_anything_else_is_not_a_subject(typed: str) -> None:
    with pytest.raises(InvalidCommand) as refused:
        parse_subject(typed)
    assert refused.value.field == "subject"  # the API error names the field; the text, what to type
    assert str(refused.value) == ("a subject is a phone number or one of "
                                  "phone:..., openid:..., elder:..., device:..., email:...")


def test_a_pseudonym_is_stable_keyed_and_does_not_show_the_number() -> None:
    first = pseudonym("13912345678")
    assert first == pseudonym("13912345678") and "5678" not in first and len(first) == 32
    assert pseudonym("13912345679") != first
    try:
        set_pseudonym_key(b"another deployment")
        assert pseudonym("13912345678") != first  # without the key a number cannot be tested
    finally:
        set_pseudonym_key(b"")
    assert pseudonym("13912345678") == first


def test_an_elders_home_is_personal_a_citizens_place_is_not() -> None:
    """Bugs: a type's chosen fields cached for another choice (an elder's case sealing no coordinates
    after a citizen's case, or a citizen's sealing them); a nested path noted where it holds nothing."""
    home = Place(34.33, 108.71, "610402")
    elder = CaseRegistered("C2", "elderly_emergency", 1, "alarm", "一键呼叫", CallerInfo(), AT, AT,
                           location=home, elder_id="E7")
    citizen = dataclasses.replace(registered(phone="13912345678"), location=home)
    for _ in range(2):  # the second time from the cache
        assert {("location", "lat"), ("location", "lon")} <= set(personal_paths(elder))
        assert ("location", "lat") not in set(personal_paths(citizen))
        assert ("description",) in set(personal_paths(citizen))
    nowhere = dataclasses.replace(elder, location=None)
    assert set(personal_paths(nowhere)) == {("description",)}  # no place: nothing to seal under it


def test_reference_items_about_people_are_theirs_and_crews_are_not() -> None:
    """Bugs: the kind's choice of personal fields ignored, or cached across kinds."""
    properties = {"name": "王大爷", "phone": "13912345678"}
    geometry = {"type": "Point", "coordinates": [108.7, 34.3]}
    elder = ReferenceRecorded("elder", "E7", properties, geometry, "d1")
    crew = ReferenceRecorded("provider", "P1", {"name": "抢修一班"}, geometry, "d2")
    for _ in range(2):
        assert set(personal_paths(elder)) == {("properties",), ("geometry",)}
        assert subject_of(elder) == "elder:E7"
        assert personal_paths(crew) == ()


def test_an_optional_nested_message_is_walked() -> None:
    """Bug: a `X | None` field taken for a leaf, so the address words a gazetteer matched (personal)
    go into the log in the clear."""
    matched = MatchedPlace("P1", "人民路小区", "community", 92.0, "人民路 8 号")
    located = CaseLocated("C1", Place(34.33, 108.71), "gazetteer", AT, place=matched)
    assert personal_paths(located) == (("place", "text"),)


@dataclass(frozen=True, slots=True)
class _Person:
    name: str = field(metadata=PERSONAL)
    role: str = "caller"


@dataclass(frozen=True, slots=True)
class _Meeting:
    topic: Any
    people: tuple[_Person, ...]
    minutes: str | None = field(default=None, metadata=PERSONAL)


@dataclass(frozen=True, slots=True)
class _Unresolved:
    who: _NoSuchType  # type: ignore[name-defined]  # noqa: F821
    note: str = field(default="", metadata=PERSONAL)


def test_lists_of_messages_leaves_of_any_type_and_unresolved_hints() -> None:
    """Bugs: items of a list of messages skipped or named without their index; the walk stopping at
    a plain value in an `Any` field; a type hint that does not resolve failing the append."""
    meeting = _Meeting("停电", (_Person("张三"), _Person("李四")), minutes="记录")
    assert personal_paths(meeting) == (("people", 0, "name"), ("people", 1, "name"), ("minutes",))
    assert personal_paths(_Unresolved(_Person("王五"), note="x")) == (("who", "name"), ("note",))
