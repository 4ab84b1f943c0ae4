"""The JSON the store exchanges with PostgreSQL: orjson, and exact where orjson is not.

Every event appended is encoded here and every event read is decoded here, so
speed matters: orjson takes a fifth of the standard library's time to encode an
event and half of it to decode one. `jsonb` travels in PostgreSQL's binary
format (a version byte, then the JSON text as UTF-8 bytes), so the text is
never turned into a Python string on the way.

Two kinds of value orjson would not give back exactly go through `json`, which
keeps them: integers beyond 64 bits (orjson refuses to encode them, and decodes
them as floats) and, on the way in, numbers with 19 or more digits in a row
(found by a byte-wise scan that costs a fraction of the decoding; digit runs
inside strings - a long account number - only make that value take the slower
path). What PostgreSQL stores and hashes does not depend on this text: it parses
it into `jsonb`.
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
    return _exact(data, data)


def encode_jsonb(value: Any) -> bytes:
    """`value` in `jsonb`'s binary format."""
    return JSONB_VERSION + encode(value)


def decode_jsonb(data: bytes) -> Any:
    """The value of `jsonb` in its binary format, every number exact."""
    if not data.startswith(JSONB_VERSION):
        raise ValueError(f"jsonb in binary format version {data[:1]!r}; this store reads version 1")
    return _exact(data, memoryview(data)[1:])


def _exact(data: bytes, body: bytes | memoryview) -> Any:
    """`body` (the JSON in `data`) decoded by orjson, or by `json` where a run of digits is long
    enough for orjson to lose it."""
    if data.translate(_DIGITS).find(_LONG_RUN) >= 0:
        return json.loads(bytes(body))
    return orjson.loads(body)
