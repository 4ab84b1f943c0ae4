"""The store's JSON: fast, and every value back exactly as it went in."""

from __future__ import annotations

import json

import pytest

from eventstore import jsontext

VALUES = [
    {"text": "整栋楼停电，电梯困人", "n": 3, "f": 0.1, "ok": True, "none": None, "list": [1, "二", [3]]},
    {"big": 12345678901234567890123, "negative_big": -9223372036854775809, "u64": 18446744073709551615},
    {"huge": int("9" * 400), "account": "6100012345678901234567"},
    [2**63 - 1, -(2**63), 1e300, -1e-300],
    "只是一段文字",
]


@pytest.mark.parametrize("value", VALUES)
def test_every_value_comes_back_exactly(value: object) -> None:
    assert jsontext.loads(jsontext.encode(value)) == value
    assert jsontext.decode_jsonb(jsontext.encode_jsonb(value)) == value
    back = jsontext.decode_jsonb(jsontext.encode_jsonb(value))
    assert json.dumps(back, sort_keys=True) == json.dumps(value, sort_keys=True)  # ints stay ints


def test_text_is_compact_utf8_and_keys_become_strings() -> None:
    assert jsontext.encode({"地址": "人民路", 1: [1, 2]}) == '{"地址":"人民路","1":[1,2]}'.encode()
    assert jsontext.dumps({"a": 1}) == '{"a":1}'


def test_an_integer_orjson_refuses_is_encoded_exactly() -> None:
    assert jsontext.encode({"n": 10**30, "name": "张三"}) == (
        '{"n":1000000000000000000000000000000,"name":"张三"}'.encode())  # compact, UTF-8 as is


def test_a_long_run_of_digits_as_postgresql_writes_numbers_decodes_exactly() -> None:
    # PostgreSQL writes a jsonb number without an exponent, however large
    assert jsontext.decode_jsonb(b'\x01{"n": ' + b"1" * 25 + b"}") == {"n": int("1" * 25)}
    assert jsontext.decode_jsonb(b'\x01{"n": 1' + b"0" * 19 + b".5}")["n"] == 1e19 + 0.5
    assert jsontext.loads(b"1" * 25) == int("1" * 25)  # the run at the very start of the text
    assert jsontext.decode_jsonb(b"\x01" + b"1" * 25) == int("1" * 25)  # ... after the version byte


def test_an_unknown_jsonb_format_version_is_refused() -> None:
    with pytest.raises(ValueError, match=r"version b'\\x02'; this store reads version 1$"):
        jsontext.decode_jsonb(b'\x02{"a": 1}')


SID = b'"SM' + b"0" * 28 + b'1234"'
CARD = '"退款到卡号6222021234567890123，谢谢"'.encode()


@pytest.mark.parametrize("text", [
    b'{"sid": ' + SID + b"}",
    b'{"text": ' + CARD + b', "n": 5}',
    b'["x' + b"1" * 19 + b"y" + b"2" * 19 + b'"]',  # two runs in one string
    b'{"n": 123456789012345678, "s": "-' + b"1" * 19 + b'"}',  # 18 digits; a sign inside a string
    b'"' + b"1" * 19 + b'"',  # the whole text a string of digits
])
def test_a_long_run_of_digits_inside_a_string_is_no_long_number(text: bytes) -> None:
    """Twilio message ids, card numbers in a complaint: orjson reads them exactly (they are text).
    Bug: every such event decoded by the slower `json` (a worker's reads 12 % slower)."""
    assert not jsontext.has_long_number(text)
    assert not jsontext.has_long_number(b"\x01" + text, 1)


@pytest.mark.parametrize("text", [
    b'{"n": ' + b"1" * 19 + b"}",
    b'{"n":' + b"1" * 25 + b"}",
    b'{"n": -' + b"1" * 19 + b"}",
    b'[1, ' + b"9" * 19 + b"]",
    b"[" + b"9" * 19 + b"]",
    b'{"a": [1,\n\t ' + b"9" * 19 + b"]}",
    b"1" * 19,
    b" -" + b"1" * 19,
    b'{"s": "x' + b"1" * 19 + b'", "n": ' + b"2" * 19 + b"}",  # a run in a string, then a number
])
def test_every_number_of_nineteen_digits_or_more_is_found(text: bytes) -> None:
    """Bug: a number orjson reads as a float (or rounds) taken past the exact path."""
    assert jsontext.has_long_number(text)
    assert jsontext.has_long_number(b"\x01" + text, 1)


def test_a_document_with_both_decodes_exactly() -> None:
    value = {"sid": "SM" + "0" * 28 + "1234", "n": 2**64 + 1, "card": "6222021234567890123"}
    assert jsontext.decode_jsonb(b"\x01" + json.dumps(value).encode()) == value
    assert jsontext.decode_jsonb(b'\x01{"sid": "SM' + b"0" * 32 + b'"}') == {"sid": "SM" + "0" * 32}
