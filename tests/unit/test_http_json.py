"""The API's JSON as clients read it: Chinese as it is, times in ISO 8601 with their offset,
compact, and what only the standard library writes still written."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum

import pytest

from gateway.http import dumps, json_bytes, json_response


class Light(StrEnum):
    RED = "red"


BEIJING = timezone(timedelta(hours=8))


@pytest.mark.parametrize(("value", "text"), [
    ({"matter": "停电了", "n": 3, "ok": True, "none": None},
     '{"matter":"停电了","n":3,"ok":true,"none":null}'),
    ({"at": datetime(2026, 11, 23, 8, 0, tzinfo=UTC)}, '{"at":"2026-11-23T08:00:00+00:00"}'),
    ({"at": datetime(2026, 11, 23, 8, 0, 0, 120, tzinfo=BEIJING)},
     '{"at":"2026-11-23T08:00:00.000120+08:00"}'),
    ({"day": date(2026, 11, 23), "light": Light.RED}, '{"day":"2026-11-23","light":"red"}'),
    ({1: "by priority", "ids": ("C1", "C2")}, '{"1":"by priority","ids":["C1","C2"]}'),
    ({"big": 2**70}, '{"big":1180591620717411303424}'),  # past 64 bits: the standard library's way
    ({"at": time(8, 0, tzinfo=BEIJING)}, '{"at":"08:00:00+08:00"}'),
    ({"quote": 'a"b\\c\n</script>'}, '{"quote":"a\\"b\\\\c\\n</script>"}'),
])
def test_values_are_written_as_the_api_always_wrote_them(value: object, text: str) -> None:
    """Bugs: Chinese escaped, a time without its offset or in another form, an integer key or
    a value orjson refuses failing the whole answer."""
    assert dumps(value) == text
    assert json_bytes(value) == text.encode()
    assert json.loads(text) is not None


def test_an_unknown_type_is_still_refused() -> None:
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_a_json_response_says_utf8() -> None:
    response = json_response({"matter": "停电"}, 201)
    assert response.status == 201 and response.content_type == "application/json"
    assert response.charset == "utf-8" and response.body == '{"matter":"停电"}'.encode()


@pytest.mark.parametrize("raw", ["2026-11-23t08:00:00z", "2026-11-23T08:00:00z", "2026-11-23T08:00:00Z"])
def test_an_instant_in_rfc_3339_takes_a_lower_case_t_and_z(raw: str) -> None:
    """RFC 3339 5.6 lets `T` and `Z` be lower case, and the channels' times take them (`channels.times`);
    the API's instants (`expires_at`, `until`, `remind_at`, `from`/`to`) and the audit's `as_of` were
    400 for a `z`."""
    from gateway.cli.replay import parse_as_of
    from gateway.http import instant

    assert instant(raw, "expires_at") == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert parse_as_of(raw) == datetime(2026, 11, 23, 8, tzinfo=UTC)
