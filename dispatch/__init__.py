"""The domain: one package per capability, each exporting one `Capability` object.

Importing any part of the domain imports every capability package below, so
every `@event` and `@timer_command` declaration has run before a stored record
is decoded (`dispatch.core.messages.from_recorded`): a log holds the events of
all capabilities, whichever of them a process or a test happens to use.
A new capability package is listed here and in `gateway/bootstrap.py`.
"""

# Missed calls before intake: `intake.sms` reads the caller key of `missed_calls.task`,
# whose package in turn reads `intake.sms` (the import order is fixed here, for every entry point).
from dispatch import core, missed_calls  # noqa: F401, I001
from dispatch import cases, customers, elderly, gis, intake, knowledge, linking, notify, places, supervision  # noqa: F401
from dispatch import org, personal, reports  # noqa: F401
