"""The JSON the store exchanges with PostgreSQL: orjson, and exact where orjson is not.

Every event appended is encoded here and every event read is decoded here, so
speed matters: orjson takes a fifth of the standard library's time to encode an
event and half of it to decode one. `jsonb` travels in PostgreSQL's binary
format (a version byte, then the JSON text as UTF-8 bytes), so the text is
never turned into a Python string on the way.

Two kinds of value orjson would not give back exactly go through `json`, which
keeps them: integers beyond 64 bits (orjson refuses to encode them, and decodes
them as floats) and, on the way out of the store, a text with a number of 19 or
more digits. A byte-wise scan finds those at a fraction of the decoding's cost:
it looks for a run of 19 digits, and a run inside a string (a message id, a
bank card number in a complaint) is told from a number by what comes before it:
only a number follows `[`, `:`, `,` or the start of the text (whitespace and a
minus sign between). A string that itself holds `: ` and such a run only takes
the slower path. What PostgreSQL stores and hashes does not depend on this text:
it parses it into `jsonb`.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS
JSONB_VERSION = b"\x01"
"""The first byte of `jsonb` in PostgreSQL's binary format (the only version there is)."""
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
"""A translation table: every ASCII digit to `0`, any other byte to a space."""
_LONG_RUN = b"0" * 19
"""19 digits in a row: a number orjson may not hold exactly (2**63 has 19 digits)."""
_BEFORE_NUMBER = frozenset(b"[:,")
"""What a JSON number follows (besides the start of the text), whitespace and its sign aside."""
_BETWEEN = frozenset(b" \t\n\r-")


def encode(value: Any) -> bytes:
    """`value` as compact JSON in UTF-8, non-ASCII as is; non-string keys become strings."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a type neither knows
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def dumps(value: Any) -> str:
    """`encode` as text."""
    return encode(value).decode()


def loads(data: bytes) -> Any:
    """The value of JSON in UTF-8, every number exact."""
    return _exact(data, 0)


def encode_jsonb(value: Any) -> bytes:
    """`value` in `jsonb`'s binary format."""
    return JSONB_VERSION + encode(value)


def decode_jsonb(data: bytes) -> Any:
    """The value of `jsonb` in its binary format, every number exact."""
    if not data.startswith(JSONB_VERSION):
        raise ValueError(f"jsonb in binary format version {data[:1]!r}; this store reads version 1")
    return _exact(data, 1)


def _exact(data: bytes, start: int) -> Any:
    """The JSON in `data` from `start` decoded by orjson, or by `json` where it has a number long
    enough for orjson to lose it."""
    body = memoryview(data)[start:] if start else data
    if has_long_number(data, start):
        return json.loads(bytes(body))
    return orjson.loads(body)


def has_long_number(data: bytes, start: int = 0) -> bool:
    """Whether the JSON text in `data` from `start` may hold a number of 19 or more digits (true
    also for such a run in a string after `: ` or the like; never false for a number)."""
    digits = data.translate(_DIGITS)
    at = digits.find(_LONG_RUN, start)
    while at >= 0:
        before = at - 1
        while before >= start and data[before] in _BETWEEN:
            before -= 1
        if before < start or data[before] in _BEFORE_NUMBER:
            return True
        end = digits.find(b" ", at + len(_LONG_RUN))  # past this run: the next one, if any
        if end < 0:
            return False
        at = digits.find(_LONG_RUN, end)
    return False
