"""`python -m tests.browser_setup` installs HAProxy and LuaJIT beside Chromium when any is missing.

Bugs it catches: haproxy left out of what is installed (a fresh machine would fail the
scale-out test), Debian's /usr/sbin/haproxy not found when /usr/sbin is not on PATH, a
program found anyway asked for again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests import browser_setup


def test_haproxy_is_among_the_programs_installed() -> None:
    assert browser_setup.PROGRAMS["haproxy"][1] == ("haproxy",)
    assert "chromium" in browser_setup.PROGRAMS["chromium"][1]


def test_haproxy_in_sbin_is_found_without_it_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    real = shutil.which

    def which(name: str, mode: int = 1, path: str | None = None) -> str | None:
        if path is not None and "/usr/sbin" in path.split(":") and name == "haproxy":
            return "/usr/sbin/haproxy"
        return real(name, mode, path) if path is None else None
    monkeypatch.setattr(browser_setup.shutil, "which", which)
    assert browser_setup.haproxy() == "/usr/sbin/haproxy"
    assert browser_setup.missing() == {"chromium": ("chromium", "fonts-noto-cjk"), "luajit": ("luajit",)}


def test_only_missing_programs_are_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(browser_setup.PROGRAMS, "chromium", (lambda: "/usr/bin/chromium", ("chromium",)))
    monkeypatch.setitem(browser_setup.PROGRAMS, "haproxy", (lambda: None, ("haproxy",)))
    monkeypatch.setitem(browser_setup.PROGRAMS, "luajit", (lambda: "/usr/bin/luajit", ("luajit",)))
    assert browser_setup.missing() == {"haproxy": ("haproxy",)}
    commands: list[list[str]] = []
    monkeypatch.setattr(browser_setup, "_run", lambda command, deadline: commands.append(command) or True)
    monkeypatch.setattr(browser_setup.os, "geteuid", lambda: 0)
    monkeypatch.setattr(browser_setup.shutil, "which", lambda name, *a, **k: f"/usr/bin/{name}")
    assert browser_setup.main() == 0
    assert commands[-1][-1] == "haproxy" and "chromium" not in commands[-1]
