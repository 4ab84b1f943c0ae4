"""Alarm event codes: Contact ID (`ADM-CID`, SIA DC-05) and SIA-DCS (DC-03).

Both decode into an `AlarmSignal` whose `kind` drives the elderly flow:
`alarm` opens a case, `test` (periodic / manual test) and `restore` /
`status` are recorded only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from channels.errors import BadInput

CID_TEST = frozenset(range(601, 610))
"""601 manual test ... 602 periodic test ... 607 walk test, 608 test with trouble."""
CID_ALARM = range(100, 180)
"""1xx: medical (100-102), fire (110-118), panic / duress (120-129), intrusion, general alarms."""
SIA_TEST = frozenset({"RP", "RX", "RY", "TX", "TS", "TE", "TP"})
SIA_ALARM = frozenset({"MA", "PA", "HA", "FA", "QA", "BA", "GA", "KA", "WA", "UA", "TA"})
SIA_RESTORE_LETTERS = frozenset("HR")

_CID = re.compile(r"^(?:#[0-9A-Fa-f]{3,16}\|)?([136])(\d{3}) ?([0-9A-Fa-f]{2}) ?([0-9A-Fa-f]{3})$")
_SIA_ACCOUNT = re.compile(r"^#[0-9A-Fa-f]{3,16}\|")
_SIA_EVENT = re.compile(r"^(?:[a-z]{2}[^/A-Z]*)*([A-Z]{2})(\d*)")
_HTTP_CODE = re.compile(r"^(?:([A-Z]{2})|([ER]?)(\d{3})|([136])(\d{3}))$")


@dataclass(frozen=True, slots=True)
class AlarmSignal:
    """One decoded alarm event: what it is, where (zone) and what to do with it."""

    protocol: str
    code: str
    kind: str
    zone: str | None = None
    qualifier: str | None = None
    text: str | None = None


def _cid_kind(qualifier: str, code: int) -> str:
    """Qualifier 1 is a new event, 3 a restore, 6 a condition still present (a status report,
    DC-05): only a new 1xx event is an alarm, so a panel re-reporting opens no second case."""
    if qualifier == "3":
        return "restore"
    if code in CID_TEST:
        return "test"
    return "alarm" if code in CID_ALARM and qualifier == "1" else "status"


def _sia_kind(code: str) -> str:
    if code in SIA_TEST:
        return "test"
    if code in SIA_ALARM:
        return "alarm"
    return "restore" if code[1] in SIA_RESTORE_LETTERS else "status"


def decode_cid(data: str) -> AlarmSignal:
    """A Contact ID block `#acct|QEEE GG CCC`."""
    match = _CID.match(data.strip())
    if match is None:
        raise BadInput("Contact ID data is not QEEE GG CCC", code="bad_contact_id")
    qualifier, code, _group, zone = match.groups()
    return AlarmSignal("ADM-CID", code, _cid_kind(qualifier, int(code)), zone, qualifier)


def _sia_events(block: str) -> list[tuple[str, str | None]]:
    """The (code, zone) of every event of one `N` / `O` block (DC-03 5.2: several may follow
    one another, separated by `/`, each after the modifiers that apply to it)."""
    found = []
    for part in block[1:].split("/"):
        match = _SIA_EVENT.match(part)
        if match:
            code, zone = match.groups()
            found.append((code, zone or None))
    return found


def decode_sia(data: str) -> AlarmSignal:
    """A SIA-DCS group `#acct|N[ri1/][id2/]MA1[/...][|N...][|Atext]`.

    A group may carry several events (in one block or in several `|`-separated blocks): the
    first alarm among them counts, else the first event, so that an alarm reported behind a
    test or an opening is never recorded as that test or opening.
    """
    text = _SIA_ACCOUNT.sub("", data.strip())
    if not text or text[0] not in "NO":
        raise BadInput("SIA-DCS data must start with N or O", code="bad_sia_data")
    blocks = re.sub(r"\^[^^]*\^", "", text).split("|")
    note = next((b[1:] for b in blocks[1:] if b.startswith("A")), None)
    events = [(b[0], code, zone) for b in blocks if b[:1] in ("N", "O") for code, zone in _sia_events(b)]
    if not events:
        raise BadInput("SIA-DCS data has no event code", code="bad_sia_data")
    qualifier, code, zone = next((e for e in events if _sia_kind(e[1]) == "alarm"), events[0])
    return AlarmSignal("SIA-DCS", code, _sia_kind(code), zone, qualifier, note)


def decode(token: str, data: str) -> AlarmSignal:
    """Decode the data block of a `SIA-DCS` or `ADM-CID` frame."""
    if token == "ADM-CID":
        return decode_cid(data)
    if token == "SIA-DCS":
        return decode_sia(data)
    raise BadInput(f"message type {token} is not supported", code="unsupported")


def decode_http_code(code: str, zone: str | None) -> AlarmSignal:
    """A code sent over HTTPS: a SIA code (`MA`) or Contact ID (`101`, `E101`, `R101`, or with
    the event qualifier as Contact ID writes it: `1101` new, `3101` restore, `6101` status)."""
    match = _HTTP_CODE.match(code.strip().upper())
    if match is None:
        raise BadInput("code must be a SIA code (MA) or a Contact ID code (101, E101, R101, 1101, 3101)",
                       code="bad_code")
    sia, event, number, qualified, qualified_number = match.groups()
    if sia:
        return AlarmSignal("SIA", sia, _sia_kind(sia), zone)
    if qualified:
        qualifier, number = qualified, qualified_number
    else:
        qualifier = "3" if event == "R" else "1"
    return AlarmSignal("CID", number, _cid_kind(qualifier, int(number)), zone, qualifier)
