"""`intake erase SUBJECT --reason TEXT [--basis request]`: erase a data subject (PIPL Art. 47).

The same as `POST /api/v1/subjects/{subject}/erase` (`gateway/erasure.py`):
the person's keys are deleted, the read models scrubbed, the erasure recorded.
Safe beside running servers: they are told by NOTIFY and drop the keys too. Refused
(exit 1, nothing erased) while a case of the person is on legal hold, unless `--basis order`.
"""

from __future__ import annotations

import argparse
import sys

from dispatch.core.errors import DispatchError
from dispatch.personal.erasure import LEGAL_BASES, EraseSubject
from gateway.settings import Settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `intake erase`."""
    p.add_argument("subject", help="a phone number, or openid:..., elder:..., device:..., email:...")
    p.add_argument("--reason", required=True, help="why (kept with the erasure)")
    p.add_argument("--basis", default="request", choices=LEGAL_BASES,
                   help="the legal basis (default request)")
    p.add_argument("--by", default="cli", help="who asked for it (default cli)")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Erase and print what was done."""
    from gateway.bootstrap import build_services, close_services
    from gateway.cli.stores import stores
    from gateway.erasure import erase

    async with stores(settings) as live:
        services = await build_services(live)
        try:
            cmd = EraseSubject(args.subject, args.reason, args.basis, f"admin:{args.by}")
            done = await erase(services, cmd)
        except DispatchError as exc:  # a legal hold, a bad subject or reason: nothing was erased
            print(f"intake erase: {exc.code}: {exc}", file=sys.stderr)
            return 1
        finally:
            await close_services(services)
    print(f"erased {done.subjects} identifier(s), {done.keys} key(s); erasure {done.erasure_id}; "
          f"{len(done.case_ids)} case(s) now show erased fields: {', '.join(done.case_ids) or '-'}")
    return 0
