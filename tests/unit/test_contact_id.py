"""Contact ID and SIA-DCS event codes decode into alarm / test / restore / status."""

from __future__ import annotations

import pytest
from my_dc09_spt.msg.dc03_msg import dc03_msg
from my_dc09_spt.msg.dc05_msg import dc05_msg

from channels.contact_id import decode, decode_http_code
from channels.errors import BadInput


@pytest.mark.parametrize(("params", "kind"), [
    ({"code": 101, "q": 1, "zone": 1}, "alarm"),
    ({"code": 120, "q": 1, "zone": 3}, "alarm"),
    ({"code": 101, "q": 3, "zone": 1}, "restore"),
    ({"code": 101, "q": 6, "zone": 1}, "status"),  # DC-05: a condition still present, reported again
    ({"code": 602, "q": 6}, "test"),
    ({"code": 602, "q": 1}, "test"),
    ({"code": 601, "q": 1}, "test"),
    ({"code": 302, "q": 1}, "status"),
])
def test_contact_id_kinds(params: dict[str, object], kind: str) -> None:
    signal = decode("ADM-CID", dc05_msg.dc05event("1234", params)[:-1])
    assert signal.kind == kind
    assert signal.code == str(params["code"])


@pytest.mark.parametrize(("params", "kind"), [
    ({"code": "MA", "zone": 1}, "alarm"),
    ({"code": "PA", "zone": 1, "area": 2}, "alarm"),
    ({"code": "RP"}, "test"),
    ({"code": "TX"}, "test"),
    ({"code": "MH", "zone": 1}, "restore"),
    ({"code": "YT"}, "status"),
])
def test_sia_kinds(params: dict[str, object], kind: str) -> None:
    signal = decode("SIA-DCS", dc03_msg.dc03event("1234", params)[:-1])
    assert signal.kind == kind
    assert signal.code == params["code"]


def test_sia_with_modifiers_and_text() -> None:
    signal = decode("SIA-DCS", "#1234|Nri1^Bedroom^/id2/MA7|Ahelp")
    assert (signal.code, signal.zone, signal.text) == ("MA", "7", "help")


@pytest.mark.parametrize(("data", "code", "zone"), [
    ("#1234|Nri1/RP/ri2/MA3", "MA", "3"),  # a medical alarm behind an automatic test
    ("#1234|Nri1/OP1/PA2", "PA", "2"),  # a panic behind an opening by user 1
    ("#1234|Nri1/CL1|Nri2/MA4|Ahelp", "MA", "4"),  # the alarm in a second block
    ("#1234|Nri1/BA1/BA2", "BA", "1"),  # several alarms: the first
    ("#1234|Nri1/OP1/CL2", "OP", "1"),  # no alarm: the first event
])
def test_an_alarm_anywhere_in_a_sia_group_counts(data: str, code: str, zone: str) -> None:
    """DC-03 lets a block (and a group of `|`-separated blocks) carry several events, as siadc09
    parses them: the alarm among them is what the group reports. Bug: only the first event was
    read, so `Nri1/RP/ri2/MA3` was recorded as a periodic test, ACKed, and opened no case."""
    signal = decode("SIA-DCS", data)
    assert (signal.code, signal.zone) == (code, zone)


@pytest.mark.parametrize(("token", "data"), [
    ("ADM-CID", "#1234|1101"), ("ADM-CID", "#1234|5101 00 001"), ("SIA-DCS", "#1234|X"),
    ("SIA-DCS", "#1234|Nri1/"), ("SIA-PUL", "1"),
])
def test_malformed_data_is_bad_input(token: str, data: str) -> None:
    with pytest.raises(BadInput):
        decode(token, data)


@pytest.mark.parametrize(("code", "kind"), [
    ("MA", "alarm"), ("101", "alarm"), ("E101", "alarm"), ("R101", "restore"), ("602", "test"),
    ("rp", "test"),
    # Contact ID's own four digits (qualifier + event): were 400 bad_code
    ("1101", "alarm"), ("3101", "restore"), ("1602", "test"),
])
def test_http_codes(code: str, kind: str) -> None:
    assert decode_http_code(code, None).kind == kind


def test_a_qualified_contact_id_code_keeps_its_qualifier() -> None:
    """`6101` is a condition still present (DC-05): a status report, not a second alarm."""
    signal = decode_http_code("6101", "3")
    assert (signal.code, signal.qualifier, signal.zone, signal.kind) == ("101", "6", "3", "status")


@pytest.mark.parametrize("code", ["", "M", "12", "X1234", "E10", "2101", "E1101", "11011"])
def test_bad_http_codes(code: str) -> None:
    with pytest.raises(BadInput):
        decode_http_code(code, None)
