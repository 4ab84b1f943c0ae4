"""One mask for personal data (gateway/privacy.py): cases, notifications, incidents, the live stream."""

from __future__ import annotations

from gateway.auth import Principal
from gateway.privacy import coarse, hide_case, mask_value
from gateway.sse import visible

UNIT = Principal("unit", "U001")


def test_coordinates_are_coarsened_to_about_a_kilometre() -> None:
    assert (coarse(34.334567), coarse(108.705), coarse(None)) == (34.33, 108.7, None)
    assert mask_value("x", {"lat": 34.334567, "lon": 108.701234, "count": 3}) == {
        "lat": 34.33, "lon": 108.7, "count": 3}


def test_a_hidden_case_keeps_its_shape_and_what_a_board_needs() -> None:
    view = {"case_id": "C1", "category": "elderly_emergency", "caller": {
        "name": "欧阳娜娜", "phone": "13912345678", "email": "a@b.cn", "openid": "o123"},
        "location": {"lat": 34.334567, "lon": 108.701234, "district": "渭城区"},
        "address": "文林路88号", "description": "老人有心脏病", "result": "已送医 13800138000"}
    assert hide_case(view) == {"case_id": "C1", "category": "elderly_emergency", "caller": {
        "name": None, "phone": "*******5678", "email": None, "openid": None},
        "location": {"lat": 34.33, "lon": 108.7, "district": "渭城区"},
        "address": None, "description": None, "result": None}


def test_a_matched_place_is_hidden_with_the_rest_and_no_place_stays_none() -> None:
    """The gazetteer's match names the caller's own words ("金桥超市对面"): hidden with the address."""
    located = {"case_id": "C2", "caller": {"phone": "13912345678"}, "location": {
        "lat": 34.334567, "lon": 108.701234, "district": "610402", "source": "gazetteer",
        "place": {"id": "PL00001", "name": "金桥超市", "text": "金桥超市对面"}}}
    assert hide_case(located)["location"] == {"lat": 34.33, "lon": 108.7, "district": "610402",
                                              "source": "gazetteer", "place": None}
    assert hide_case({"case_id": "C3", "caller": {}, "location": None})["location"] is None


def test_a_hidden_case_hides_its_account_needs_recording_and_the_reason_for_its_hold() -> None:
    """Bugs: a field added to the case view after the first release (the power account number, a
    caller's special needs, the call recording, why the case is under legal hold) shown to a unit
    that may not see the case's personal data; a hold's other fields (that it holds) hidden."""
    view = {"case_id": "C4", "caller": {"phone": "13912345678"}, "location": None,
            "account_number": "0123456789", "special_needs": "听力障碍，请发短信",
            "recording_id": "rec/C4.wav",
            "legal_hold": {"by": "auditor-1", "at": "2026-12-06T08:00:00Z", "reason": "张三投诉诉讼"}}
    hidden = hide_case(view)
    assert (hidden["account_number"], hidden["special_needs"], hidden["recording_id"]) == (None, None, None)
    assert hidden["legal_hold"] == {"by": "auditor-1", "at": "2026-12-06T08:00:00Z", "reason": None}
    plain = hide_case({"case_id": "C5", "caller": {}, "location": None, "legal_hold": None})
    assert "account_number" not in plain and plain["legal_hold"] is None  # the view's shape is kept


def test_only_coordinates_are_coarsened_not_every_number() -> None:
    assert mask_value("score", 0.876543) == 0.876543
    assert mask_value("x", {"priority_score": 12.3456, "lat": 34.334567}) == {"priority_score": 12.3456,
                                                                              "lat": 34.33}


def test_the_live_stream_masks_another_units_change_and_not_its_own() -> None:
    data = {"case_id": "C1", "assigned_to": "U002", "caller_phone": "13912345678", "description": "心脏病",
            "lat": 34.334567, "lon": 108.701234, "note": "回拨 13800138000"}
    seen = visible(UNIT, {"topic": "case", "data": data})["data"]
    assert seen == {"case_id": "C1", "assigned_to": "U002", "caller_phone": "*******5678",
                    "description": "***", "lat": 34.33, "lon": 108.7, "note": "回拨 *******8000"}
    own = {**data, "assigned_to": "U001"}
    assert visible(UNIT, {"topic": "case", "data": own})["data"] == own


def test_a_hidden_case_hides_the_note_of_its_reminder() -> None:
    """Bug: an agent's reminder note ("回电欧阳娜娜，家住文林路") is free text about the caller, sealed
    as personal data, but a unit not assigned to the case read it in the case view."""
    view = {"case_id": "C6", "caller": {"phone": "13912345678"}, "location": None,
            "reminder": {"at": "2027-01-01T00:00:00+08:00", "note": "回电欧阳娜娜，家住文林路",
                         "by": "agent:A001", "reminded_at": None}}
    assert hide_case(view)["reminder"] == {"at": "2027-01-01T00:00:00+08:00", "note": None,
                                           "by": "agent:A001", "reminded_at": None}


def test_the_live_stream_hides_a_reminders_note_from_a_unit() -> None:
    """Bug: the `reminder` change (for the agent who set it) showed a unit the note's names and
    places; only the numbers in it were masked."""
    data = {"case_id": "C1", "agent": "A001", "note": "回电欧阳娜娜 13912345678 家住文林路",
            "remind_at": "2026-12-07T13:05:52+00:00"}
    seen = visible(UNIT, {"topic": "reminder", "data": data})["data"]
    assert seen == {**data, "note": "***"}
    assert visible(Principal("agent", "A001"), {"topic": "reminder", "data": data})["data"] == data
