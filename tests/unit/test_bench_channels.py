"""`intake bench channels`' wrk script: every request a new, correctly signed SMS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from bench.channels import TEXTS, TOKEN, write_script

LUAJIT = shutil.which("luajit")
URL = "http://127.0.0.1:18181/channels/twilio/sms"
OLD_POOL_RATE = 4_000  # distinct SMS per second of load the script used to cycle through
HARNESS = """
wrk = {{format = function(method, path, headers, body)
  return headers["X-Twilio-Signature"] .. " " .. body
end}}
dofile({script!r})
{setup}
for _ = 1, {count} do io.write(request(), "\\n") end
"""


def _requests(tmp_path: Path, count: int, nonce: str, setup: str = "") -> list[tuple[str, dict[str, str]]]:
    """`count` requests of the script as wrk would send them: (signature, form)."""
    if LUAJIT is None:
        pytest.skip("needs luajit (apt-get install -y luajit; wrk runs its scripts on LuaJIT)")
    script = tmp_path / f"{nonce}.lua"
    write_script(script, URL, senders=1000, nonce=nonce)
    harness = tmp_path / "harness.lua"
    harness.write_text(HARNESS.format(script=str(script), setup=setup, count=count), encoding="utf-8")
    out = subprocess.run([LUAJIT, str(harness)], capture_output=True, text=True, check=True, timeout=60)
    return [(signature, dict(parse_qsl(body)))
            for signature, body in (line.split(" ", 1) for line in out.stdout.splitlines())]


def test_no_message_id_repeats_far_beyond_what_the_old_pool_held(tmp_path: Path) -> None:
    seconds = 2
    count = 3 * OLD_POOL_RATE * seconds  # the old pool started over after OLD_POOL_RATE * seconds
    ids = [form["MessageSid"] for _, form in _requests(tmp_path, count, "0123abcd")]
    assert len(ids) == count and len(set(ids)) == count
    assert all(len(sid) == 34 and sid.startswith("SM0123abcd") for sid in ids)


def test_runs_and_threads_never_share_an_id(tmp_path: Path) -> None:
    first = {form["MessageSid"] for _, form in _requests(tmp_path, 50, "0123abcd")}
    other_run = {form["MessageSid"] for _, form in _requests(tmp_path, 50, "4567ef01")}
    other_thread = {form["MessageSid"] for _, form in _requests(tmp_path, 50, "0123abcd", "tid = 2")}
    assert not first & other_run and not first & other_thread


def test_every_request_carries_twilios_signature_of_its_own_body(tmp_path: Path) -> None:
    validator = RequestValidator(TOKEN)
    requests = _requests(tmp_path, 300, "0123abcd")
    assert {form["Body"] for _, form in requests} == set(TEXTS)
    assert len({form["From"] for _, form in requests}) == 300
    for signature, form in requests:
        assert validator.validate(URL, form, signature), form
