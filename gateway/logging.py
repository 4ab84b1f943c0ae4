"""structlog set-up: JSON lines in production, personal data always masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

_PHONE = re.compile(r"(?<![A-Za-z0-9_])(\+?\d[\d\- ]{5,}\d)(?![A-Za-z0-9_])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MIN_PHONE_DIGITS = 7
_PERSONAL_KEYS = frozenset(
    {"name", "caller_name", "phone", "caller", "from", "to", "address", "contact", "contacts",
     "email", "openid", "from_user", "fromusername", "body", "text", "description"}
)


def _mask_match(match: re.Match[str]) -> str:
    run = match.group(1)
    if _DATE.fullmatch(run) or sum(c.isdigit() for c in run) < MIN_PHONE_DIGITS:
        return run
    return "*" * max(len(run) - 4, 0) + run[-4:]


def mask_text(text: str) -> str:
    """Mask every phone-number-like run of digits but its last four.

    Runs inside identifiers (`C20261123ABC`) and ISO dates are left alone.
    """
    return _PHONE.sub(_mask_match, text)


def _mask_value(key: str, value: object) -> object:
    if isinstance(value, Mapping):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_value(key, v) for v in value]
    if key.lower() in _PERSONAL_KEYS and isinstance(value, str):
        if key.lower() in ("phone", "from", "to", "caller"):
            return mask_text(value) if any(c.isdigit() for c in value) else "***"
        return "***"
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_personal_data(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> EventDict:
    """structlog processor: names, addresses and message bodies hidden, numbers masked."""
    for key in list(event_dict):  # the event text too; a time, a level or a logger name has no number
        event_dict[key] = _mask_value(key, event_dict[key])
    return event_dict


def configure(fmt: str = "json", level: str = "info") -> None:
    """Configure structlog and stdlib logging once for the process."""
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        # plain tracebacks whatever is installed: with `rich` present (a dependency of
        # dev tools) structlog renders each traceback as a panel, which took the event
        # loop long enough under a storm of retried errors (a database outage) that
        # requests waited 20-30 s behind the logging
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
