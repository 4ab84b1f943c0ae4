"""The worker yields the CPU to the gateway on a shared host: `INTAKE_NICE`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.settings import WORKER_NICE, SettingsError, from_env

# In a child process: a niceness once raised cannot be lowered again without privilege.
_CHILD = "from gateway.cli.serve import lower_priority; import os, sys; " \
         "print(lower_priority(int(sys.argv[1])), os.getpriority(os.PRIO_PROCESS, 0))"


def _child(nice: int, *, started_at: int = 0) -> tuple[int, int]:
    command = [sys.executable, "-c", _CHILD, str(nice)]
    if started_at:
        command = ["nice", "-n", str(started_at), *command]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), int(out[1])


def test_only_the_worker_role_yields_by_default() -> None:
    assert WORKER_NICE == 10
    assert from_env({"INTAKE_ROLE": "worker"}).process.nice == WORKER_NICE
    assert from_env({"INTAKE_ROLE": "gateway"}).process.nice == 0
    assert from_env({}).process.nice == 0  # role all: listeners in the same process


def test_intake_nice_overrides_the_roles_default() -> None:
    assert from_env({"INTAKE_ROLE": "worker", "INTAKE_NICE": "0"}).process.nice == 0
    assert from_env({"INTAKE_ROLE": "gateway", "INTAKE_NICE": "19"}).process.nice == 19
    assert from_env({"INTAKE_ROLE": "worker", "INTAKE_NICE": ""}).process.nice == WORKER_NICE


@pytest.mark.parametrize("raw", ["-1", "20", "ten", "1.5"])
def test_a_bad_niceness_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(SettingsError, match="INTAKE_NICE"):
        from_env({"INTAKE_NICE": raw})


def test_lower_priority_raises_the_processes_niceness() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert _child(base + 7) == (base + 7, base + 7)


def test_lower_priority_never_lowers_a_niceness_started_with() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert _child(base + 3, started_at=12) == (base + 12, base + 12)
    assert _child(0) == (base, base)


@pytest.mark.parametrize(("raw", "message"), [
    ("http", "is not a port number"), ("65536", "out of range"), ("-1", "out of range"),
])
def test_a_bad_port_is_a_configuration_error(raw: str, message: str) -> None:
    # Ports are read the same way as INTAKE_NICE (gateway.settings._bounded).
    with pytest.raises(SettingsError, match=f"INTAKE_HTTP_PORT=.*{message}"):
        from_env({"INTAKE_HTTP_PORT": raw})
    assert from_env({"INTAKE_HTTP_PORT": ""}).http.port == from_env({}).http.port
    assert from_env({"INTAKE_HTTP_PORT": "0"}).http.port == 0
