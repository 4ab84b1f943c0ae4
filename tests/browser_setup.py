"""Make headless Chromium available for the browser tests where this machine allows it.

Run by `make test` before pytest (`python -m tests.browser_setup`). When no
Chromium is installed and we are root with apt-get, install Debian's
`chromium` (and CJK fonts so Chinese text renders) quietly, bounded in time.
It never fails the build: without a browser the browser tests skip with a
message saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

PACKAGES = ("chromium", "fonts-noto-cjk")
TIME_LIMIT = 600.0


def chromium() -> str | None:
    """The path of a Chromium executable, if any."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(command: list[str], deadline: float) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=deadline, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def main() -> int:
    """Install Chromium if missing and possible; always exit 0."""
    found = chromium()
    if found:
        print(f"browser tests: using {found}")
        return 0
    can_install = hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")
    if not can_install:
        print("browser tests: no Chromium and no root apt-get here; they will be skipped")
        return 0
    print("browser tests: installing Debian chromium (bounded to 10 minutes)...", flush=True)
    _run(["apt-get", "update", "-qq"], TIME_LIMIT / 3)
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], TIME_LIMIT)
    found = chromium()
    print(f"browser tests: using {found}" if found else
          "browser tests: chromium could not be installed; they will be skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
