"""Hypothesis strategies for what each channel may be sent: well-formed but wrong, and malformed.

Values mix the plausible (phone numbers, SIDs, statuses, times, coordinates) with the
hostile (NUL, lone surrogates, huge numbers, NaN, year 1 and 9999 with offsets, control
characters, markup, very long text), so that inputs reach every parser's branches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

from hypothesis import strategies as st

from channels import sia

NASTY = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\x7f\x1b[31m", "\u202e\u200b", "😀" * 3,
    "9" * 40, "9" * 5000, "-1", "0", "1e400", "-1e400", "nan", "NaN", "inf", "-Infinity", "0x10",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-02-30T00:00:00Z",
    "2026-11-23T08:00:00", "2026-11-23T08:00:00+24:00", "Mon, 20 Nov 2023 10:00:00 -0000",
    "Tue, 31 Dec 9999 23:59:59 -1200", "Sat, 01 Jan 0001 00:00:00 +1400", "Thu, 13 Feb 2026 25:61:61 GMT",
    "<![CDATA[", "]]>", "<x>&amp;</x>", "&", "=", "%", "%00", "+", "../../etc/passwd", "' OR 1=1 --",
    "+86 139 1234 5678", "+44 20 7946 0958", "0086-139-1234-5678", "139123456789012345678",
    "广东省东莞市南城区鸿福路 88 号", "停电了，整栋楼都没电", "a" * 300, "测" * 2000,
]
"""Text every field gets some of."""

EXTREME_TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z"]
"""Instants that parse, but overflow a timestamp once converted to UTC or moved by a deadline."""



def texts(*plausible: str, size: int = 40) -> st.SearchStrategy[str]:
    """A field's text: one of its plausible values, a nasty one, or anything."""
    choices = [st.sampled_from(NASTY), st.text(max_size=size)]
    if plausible:
        choices.insert(0, st.sampled_from(plausible))
    return st.one_of(*choices)


def json_values(*plausible: Any) -> st.SearchStrategy[Any]:
    """A JSON field's value of any type (strings as in `texts`)."""
    leaves = st.one_of(
        texts(*(p for p in plausible if isinstance(p, str))),
        st.sampled_from([p for p in plausible if not isinstance(p, str)] or [None]),
        st.integers(), st.sampled_from([2**63, -(2**63) - 1, 10**400]), st.floats(allow_nan=True),
        st.booleans(), st.none(),
    )
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
        max_leaves=6)


def json_objects(fields: dict[str, list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with some of `fields` (each a plausible value or a wrong one) and a few others."""
    known = st.fixed_dictionaries({}, optional={
        name: st.one_of(st.sampled_from(values), json_values(*values)) if values else json_values()
        for name, values in fields.items()})
    extra = st.dictionaries(texts(size=10), json_values(), max_size=2)
    return st.builds(lambda a, b: {**b, **a}, known, extra)


@st.composite
def well_formed(draw: st.DrawFn, valid: dict[str, st.SearchStrategy[Any]], wrong: dict[str, list[Any]],
                *, text: bool = False) -> dict[str, Any]:
    """Every field valid; or all but one, which is wrong for that field, hostile or missing.

    `text`: values are strings (forms, XML), else any JSON value.
    """
    values = {name: draw(strategy) for name, strategy in valid.items()}
    how = draw(st.sampled_from(["valid", "wrong", "wrong", "hostile", "missing"]))
    name = draw(st.sampled_from(sorted(valid)))
    if how == "missing":
        del values[name]
    elif how != "valid":
        hostile = texts() if text else json_values()
        values[name] = draw(st.sampled_from(wrong[name]) if how == "wrong" and wrong.get(name) else hostile)
    return values


def json_text(value: Any) -> bytes:
    """JSON as a sender would write it: lone surrogates escaped, NaN and Infinity bare."""
    return json.dumps(value, ensure_ascii=True).encode()


MALFORMED_JSON = [
    b"", b"null", b"[]", b'"x"', b"{", b'{"event_id": }', b"{'a': 1}", b'{"a": 1}{"b": 2}',
    b"[" * 5000 + b"]" * 5000, b'{"a": ' + b"9" * 5000 + b"}", b'{"a": NaN}', b'{"a": -Infinity}',
    b'{"\\ud800": 1}', b"\xff\xfe{\x00}\x00", b"\xef\xbb\xbf{}", b'{"a": "\xc3\x28"}',
]


def raw_bodies(*samples: bytes) -> st.SearchStrategy[bytes]:
    """Bodies that are not what the channel speaks: garbage, truncations, other formats."""
    return st.one_of(st.sampled_from(list(samples) + MALFORMED_JSON), st.binary(max_size=200))


def form_body(pairs: list[tuple[str, str]]) -> bytes:
    """An x-www-form-urlencoded body; lone surrogates are sent as their (invalid) UTF-8 bytes."""
    return "&".join(quote_plus(k, errors="surrogatepass") + "=" + quote_plus(v, errors="surrogatepass")
                    for k, v in pairs).encode()


def form_pairs(fields: dict[str, list[str]], *, some: bool = False
               ) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Form fields: some of `fields` (plausible or nasty values), repeated keys; strangers unless `some`."""
    known = [st.tuples(st.just(name), texts(*values)) for name, values in fields.items()]
    one = st.one_of(*known) if some else st.one_of(*known, st.tuples(texts(size=10), texts()))
    return st.lists(one, max_size=len(fields) + 2)


# SIA DC-09 -----------------------------------------------------------------------------------

SIA_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
KEYED_ACCOUNT = "E0001"


def frame(body: bytes) -> bytes:
    """LF, CRC and length over `body`, CR: what makes bytes a DC-09 frame."""
    return b"\n%04X0%03X" % (sia.crc16_arc(body), len(body) & 0xFFF) + body + b"\r"


_VALID = [("SIA-DCS", "5555", "Nri1/MA01"), ("ADM-CID", "5555", "#5555|1101 01 001"),
          ("NULL", "5555", ""), ("SIA-DCS", KEYED_ACCOUNT, "#E0001|Nri1/MA01")]
"""(token, account, data) of frames that are ACKed when framed, stamped and keyed right."""


_DATA = ["#5555|3101 01 015", "Nri0/FA", "", "|", "Nri1/", "#E0001|Nri1/MA01^", "\x00"]
_ASCII = st.characters(max_codepoint=127, exclude_characters="[]\r\n")
_FAULTS: dict[str, Callable[[st.DrawFn], dict[str, Any]]] = {
    "token": lambda draw: {"token": draw(st.sampled_from(["XYZ", "ACK", "NULL", "SIA-DCS", "ADM-CID"]))},
    "account": lambda draw: {"account": draw(st.sampled_from(
        ["1234ABCD", "0", "FFFFFFFFFFFFFFFFF", KEYED_ACCOUNT, "5555"]))},
    "data": lambda draw: {"data": draw(st.one_of(st.sampled_from(_DATA), st.text(_ASCII, max_size=30)))},
    "xdata": lambda draw: {"xdata": draw(st.sampled_from(
        ["[Xabc][Ydef]", "[X999][Y999]", "[", "][", "[\x00]", "[\xff]"]))},
    "line": lambda draw: {"line": draw(st.sampled_from(["R0FFFFFFFL0", "Lxyz", "R", "L"]))},
    "window": lambda draw: {"offset": draw(st.sampled_from([-60, 30, -3600, 86400 * 365])), "stamped": True},
    "stamp": lambda draw: {"stamped": None},
    "encryption": lambda draw: {"encrypt": None},
    "key": lambda draw: {"key": bytes(16), "encrypt": True},
    "hex": lambda draw: {"hex_ok": False, "encrypt": True},
    "nul": lambda draw: {"xdata": draw(st.sampled_from(["[\x00]", "[X108E39.66\x00][Y34N22.52]"]))},
    **{damage: (lambda d: lambda draw: {"damage": d})(damage)
       for damage in ("crc", "length", "cut", "flip", "cr", "noise", "garbled")},
}
"""What may be wrong with a frame: its content (answered NAK or DUH) or its framing (NAK or dropped).
None flips a flag."""


@st.composite
def sia_frames(draw: st.DrawFn, now: datetime) -> bytes:
    """One DC-09 frame: valid, or with one or two faults (`_FAULTS`)."""
    token, account, data = draw(st.sampled_from(_VALID))
    f: dict[str, Any] = {
        "token": token, "account": account, "data": data, "seq": draw(st.integers(0, 9999)),
        "xdata": draw(st.sampled_from(["", "[X108E39.66][Y34N22.52]"])),
        "line": draw(st.sampled_from(["L0", "", "R1L2"])), "offset": 0, "key": SIA_KEY, "hex_ok": True,
        "damage": "none", "stamped": account == KEYED_ACCOUNT or draw(st.booleans()),
        "encrypt": account == KEYED_ACCOUNT,
    }
    for fault in draw(st.lists(st.sampled_from([*sorted(_FAULTS), "nul", "nul"]), max_size=2)):
        f.update({k: (not f[k]) if v is None else v for k, v in _FAULTS[fault](draw).items()})
    stamp = "_" + (now + timedelta(seconds=f["offset"])).strftime("%H:%M:%S,%m-%d-%Y") if f["stamped"] else ""
    if f["damage"] == "garbled":
        stamp = draw(st.sampled_from(["_99:99:99,13-45-2026", "_garbage", "_"]))
    head = b'"%s%s"%04d%s#%s[' % (b"*" if f["encrypt"] else b"", f["token"].encode(), f["seq"],
                                  f["line"].encode(), f["account"].encode())
    content = f["data"].encode("latin-1") + b"]" + f["xdata"].encode("latin-1") + stamp.encode()
    raw = frame(head + (_encrypted(content, f["key"], f["hex_ok"]) if f["encrypt"] else content))
    at = draw(st.integers(0, max(len(raw) - 1, 0)))
    return _damaged(raw, f["damage"], at, draw(st.binary(max_size=60)))


def _encrypted(content: bytes, key: bytes, hex_ok: bool) -> bytes:
    """The hex of AES-CBC (zero IV) over `pad|content`, as a keyed device sends it."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    clear = b"|" + content
    pad = b"0" * (16 - len(clear) % 16 if len(clear) % 16 else 16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    block = encryptor.update(pad + clear) + encryptor.finalize()
    return block.hex().upper().encode() if hex_ok else b"NOTHEX" + block.hex().encode()[:7]


def _damaged(raw: bytes, how: str, at: int, noise: bytes) -> bytes:
    if how == "crc":
        return raw[:1] + b"0000" + raw[5:]
    if how == "length":
        return raw[:5] + b"0FFF" + raw[9:]
    if how == "cut":
        return raw[:at] + b"\r"
    if how == "flip":
        return raw[:at] + bytes([raw[at] ^ 0x20]) + raw[at + 1 :]
    if how == "cr":
        return raw[:at] + b"\r" + raw[at:]
    if how == "noise":
        return noise + b"\r"
    return raw
