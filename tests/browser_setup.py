"""Make the programs the e2e tests drive available where this machine allows it.

Run by `make test` before pytest (`python -m tests.browser_setup`). For each
program missing - headless Chromium for the browser tests, HAProxy for the
scale-out test (3 gateways behind a load balancer), LuaJIT for the tests of
the channels benchmark's wrk script - when we are root with
apt-get, install Debian's package (Chromium with CJK fonts so Chinese text
renders) quietly, bounded in time. It never fails the build itself: without a
browser the browser tests skip with a message saying why; without HAProxy the
scale-out test fails, naming what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable

TIME_LIMIT = 600.0


def chromium() -> str | None:
    """The path of a Chromium executable, if any."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def haproxy() -> str | None:
    """The path of the haproxy executable, if any (Debian puts it in /usr/sbin, often not on PATH)."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def luajit() -> str | None:
    """The path of LuaJIT, which runs wrk's scripts (tests/unit/test_bench_channels.py runs ours)."""
    return shutil.which("luajit")


PROGRAMS: dict[str, tuple[Callable[[], str | None], tuple[str, ...]]] = {
    "chromium": (chromium, ("chromium", "fonts-noto-cjk")),
    "haproxy": (haproxy, ("haproxy",)),
    "luajit": (luajit, ("luajit",)),
}
"""Each program the e2e tests need: how to find it, and the Debian packages that bring it."""


def missing() -> dict[str, tuple[str, ...]]:
    """The programs not found here, with the packages to install for each."""
    return {name: packages for name, (find, packages) in PROGRAMS.items() if find() is None}


def _run(command: list[str], deadline: float) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=deadline, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _report() -> None:
    for name, (find, packages) in PROGRAMS.items():
        found = find()
        print(f"e2e tests: {name}: {found}" if found else
              f"e2e tests: no {name} (apt-get install {' '.join(packages)})")


def main() -> int:
    """Install what is missing if possible; always exit 0."""
    wanted = missing()
    can_install = hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")
    if wanted and can_install:
        names = ", ".join(wanted)
        print(f"e2e tests: installing Debian {names} (bounded to 10 minutes)...", flush=True)
        _run(["apt-get", "update", "-qq"], TIME_LIMIT / 3)
        packages = [p for group in wanted.values() for p in group]
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], TIME_LIMIT)
    elif wanted:
        print("e2e tests: not root with apt-get here; nothing installed")
    _report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
