"""Logs never carry full phone numbers, names, addresses or message bodies."""

from __future__ import annotations

import json

import pytest
import structlog

from gateway.logging import configure, mask_text


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
            caller={"name": "李四", "phone": "+8613700000000"},
            case_id="C20261123ABC",
        )
    finally:
        structlog.reset_defaults()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    text = json.dumps(line, ensure_ascii=False)
    for secret in ("13912345678", "张三", "秦都区", "停电", "13800138000", "李四", "13700000000"):
        assert secret not in text
    assert line["phone"].endswith("5678")
    assert line["case_id"] == "C20261123ABC"
    assert line["event"] == "sms from *******5678"
