"""The JSON text the store sends for its `json` and `jsonb` values: orjson, exact where it is not.

Every event appended is encoded here (orjson takes a fifth of the standard
library's time for an event). An integer beyond 64 bits, which orjson refuses,
goes through `json`, which keeps it exact. What PostgreSQL stores and hashes does
not depend on this text: it parses it into `jsonb`.

Reading stays with `json.loads`: orjson would read an integer beyond 64 bits as a
float, and telling such text apart first costs more than orjson saves.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def encode(value: Any) -> bytes:
    """`value` as compact JSON in UTF-8, non-ASCII as is; non-string keys become strings."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a type neither knows
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def dumps(value: Any) -> str:
    """`encode` as text."""
    return encode(value).decode()
