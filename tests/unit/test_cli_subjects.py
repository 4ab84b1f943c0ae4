"""`intake export-subject` and `intake erase` refuse a subject that names nobody in one line."""

from __future__ import annotations

import pytest

from gateway.settings import VARIABLES

NOWHERE = {"INTAKE_DATABASE_URL": "postgresql://intake@127.0.0.1:9/none",
           "INTAKE_REDIS_URL": "redis://127.0.0.1:9/0"}
"""Stores nobody listens on: a command that tried them would fail with exit 3."""


@pytest.mark.parametrize("subject", ["hello", "", "wechat:abc", "elder:"])
def test_export_of_a_subject_that_names_nobody_is_refused_in_one_line(
    subject: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a phone number nor `kind:value`: exit 2 with the rule on stderr, before any store is
    opened (it ended in an `InvalidCommand` traceback)."""
    from gateway.cli.main import main

    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in NOWHERE.items():
        monkeypatch.setenv(name, value)
    assert main(["export-subject", subject]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["intake export-subject: a subject is a phone number or one of phone:..., "
                                "openid:..., elder:..., device:..., email:..."]
