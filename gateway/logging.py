"""structlog set-up: JSON lines in production, personal data always masked."""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from gateway.privacy import mask_text, mask_value

__all__ = ["configure", "mask_personal_data", "mask_text"]


def mask_personal_data(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> EventDict:
    """structlog processor: names, addresses and message bodies hidden, numbers masked."""
    for key in list(event_dict):  # the event text too; a time, a level or a logger name has no number
        event_dict[key] = mask_value(key, event_dict[key])
    return event_dict


class StderrHandler(logging.Handler):
    """Writes each formatted record as a line to whatever `sys.stderr` is when it is written."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record (a failure goes to `handleError`, as the standard handlers do)."""
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # the logging module's own contract: never raise from emit
            self.handleError(record)


HANDLER_NAME = "intake"
"""The name of the stderr handler `configure` installs on the root logger (replaced on a second call)."""


def configure(fmt: str = "json", level: str = "info") -> None:
    """Configure structlog and stdlib logging once for the process.

    Both end in one handler whose formatter runs the same processors, the mask
    included: a line from a library through the standard `logging` module (an
    aiohttp or asyncio traceback, say) is masked like our own.
    """
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        # plain tracebacks whatever is installed: with `rich` present (a dependency of
        # dev tools) structlog renders each traceback as a panel, which took the event
        # loop long enough under a storm of retried errors (a database outage) that
        # requests waited 20-30 s behind the logging
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            mask_personal_data,  # before the record leaves structlog: every handler gets it masked
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                           structlog.stdlib.add_logger_name, stamp, structlog.processors.format_exc_info,
                           mask_personal_data],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = StderrHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
