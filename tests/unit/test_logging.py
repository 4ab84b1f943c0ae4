"""Logs never carry full phone numbers, names, addresses or message bodies."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from gateway.logging import configure, mask_personal_data, mask_text


def test_phone_numbers_keep_only_the_last_four_digits() -> None:
    assert mask_text("caller 13912345678 called") == "caller *******5678 called"
    assert mask_text("+8613912345678") == "**********5678"
    assert mask_text("queue 3 at 08:00") == "queue 3 at 08:00"
    assert mask_text("电话13800138000") == "电话*******8000"
    assert mask_text("case C20261123ABC on 2026-11-23") == "case C20261123ABC on 2026-11-23"


def test_json_log_lines_mask_personal_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json", "info")
    try:
        structlog.get_logger("test").info(
            "sms from 13912345678",
            phone="13912345678",
            name="张三",
            address="秦都区建设路195号",
            body="我家停电了，电话13800138000",
            caller={"name": "李四", "phone": "+8613700000000", "device_account": "A1B2C3"},
            account="7F3E9D", account_number="6100012345",
            case_id="C20261123ABC",
        )
    finally:
        configure("console", "info")  # as tests/conftest.py has it
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    text = json.dumps(line, ensure_ascii=False)
    for secret in ("13912345678", "张三", "秦都区", "停电", "13800138000", "李四", "13700000000",
                   "A1B2C3", "7F3E9D", "6100012345"):  # an alarm device, an electricity account
        assert secret not in text
    assert line["phone"].endswith("5678")
    assert line["case_id"] == "C20261123ABC"
    assert line["event"] == "sms from *******5678"


NUMBERS = [
    "13912345678",
    "139 1234 5678",
    "139-1234-5678",
    "+86 139 1234 5678",
    "+86-139-1234-5678",
    "+8613912345678",
    "0086 139 1234 5678",
    "008613912345678",
    "029-8866 5678",
    "88665678",
]
"""Plain, spaced, dashed and international mobile numbers and landlines, all ending 5678."""


@pytest.mark.parametrize("number", NUMBERS)
def test_every_way_of_writing_a_number_keeps_only_its_last_four_digits(number: str) -> None:
    for text in (number, f"回拨 {number} 谢谢", f"电话{number}，", f"tel:{number}."):
        masked = mask_text(text)
        digits = [c for c in masked if c.isdigit()]
        assert digits == list("5678"), (text, masked)
        assert masked.count("*") == len(number) - 4


def test_short_figures_dates_and_identifiers_stay_readable() -> None:
    for text in ("priority 3, 15 min", "room 12345", "2026-11-23", "C20261123ABC7", "v1.2.3", "08:00-09:30"):
        assert mask_text(text) == text


@pytest.mark.parametrize("number", NUMBERS)
def test_numbers_are_masked_in_every_log_field(number: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure("json", "info")
    try:
        structlog.get_logger("test").info(
            f"callback to {number}", phone=number, note=f"call {number}",
            contacts=[{"name": "王五", "phone": number}], caller_name="赵六",
            address="渭城区 文林路 12 号", extra={"to": number, "from": "unknown"},
        )
    finally:
        configure("console", "info")  # as tests/conftest.py has it
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    # The time of day may hold any four digits ("...:58.123430Z"); no part of it is a number to mask.
    assert "*" not in line.pop("timestamp") and line["level"] == "info"
    text = json.dumps(line, ensure_ascii=False)
    for secret in ("王五", "赵六", "渭城区", "文林路", "1234", "8866", "139"):
        assert secret not in text, (secret, text)
    assert line["caller_name"] == line["address"] == "***"
    assert line["extra"]["from"] == "***"
    assert line["contacts"][0]["name"] == "***"
    assert line["phone"].endswith("5678") and line["note"].endswith("5678")


def test_the_processor_masks_every_field_whatever_their_order() -> None:
    masked = mask_personal_data(None, "info", {
        "event": "call 13912345678", "level": "info", "timestamp": "2026-11-23T08:00:00Z",
        "note": "x 13912345678", "phone": "13912345678"})
    assert masked == {"event": "call *******5678", "level": "info", "timestamp": "2026-11-23T08:00:00Z",
                      "note": "x *******5678", "phone": "*******5678"}


def test_numbers_under_from_to_and_caller_keep_their_last_four_digits() -> None:
    masked = mask_personal_data(None, "info", {
        "from": "+8613912345678", "to": "139 1234 5678", "caller": "13912345678", "From": "alice",
        "phone": ["13912345678", "13800138000"], "contacts": ["13912345678", "张三"]})
    assert masked == {"from": "**********5678", "to": "*********5678", "caller": "*******5678",
                      "From": "***", "phone": ["*******5678", "*******8000"], "contacts": ["***", "***"]}


def test_seven_digits_are_a_number_six_are_not() -> None:
    assert mask_text("拨 8665678") == "拨 ***5678"
    assert mask_text("拨 665678") == "拨 665678"


def _json_lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_standard_logging_records_and_their_tracebacks_go_through_the_mask(
    capsys: pytest.CaptureFixture[str]
) -> None:
    configure("json", "info")
    try:
        try:
            raise KeyError("no open case of caller 13912345678")
        except KeyError:
            logging.getLogger("aiohttp.server").exception("Error handling request from %s", "13800138000")
        logging.getLogger("asyncio").warning("callback to +86 139 1234 5678 failed")
        try:
            raise ValueError("sms from 13700001111")
        except ValueError:
            structlog.get_logger("test").exception("reactor_failed", phone="13700001111")
    finally:
        configure("console", "info")
    err = capsys.readouterr().err
    for secret in ("13912345678", "13800138000", "139 1234", "13700001111"):
        assert secret not in err, err
    lines = _json_lines(err)
    assert [line["event"] for line in lines] == [
        "Error handling request from *******8000", "callback to *************5678 failed", "reactor_failed"]
    assert lines[0]["logger"] == "aiohttp.server" and lines[0]["level"] == "error"
    assert "KeyError" in str(lines[0]["exception"]) and "*******5678" in str(lines[0]["exception"])
    assert "ValueError" in str(lines[2]["exception"]) and "*******1111" in str(lines[2]["exception"])


def test_coordinates_in_logs_are_coarse() -> None:
    masked = mask_personal_data(None, "info", {"event": "located", "lat": 34.334567, "lon": 108.701234})
    assert (masked["lat"], masked["lon"]) == (34.33, 108.7)
