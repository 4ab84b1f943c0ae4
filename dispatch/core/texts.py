"""What the system writes to people by SMS and WeChat: one message catalogue per language.

The catalogues are `dispatch/core/texts/<language>.json` (flat `"group.key": "text"` with
`str.format` fields such as `{case_id}` or `{when:%H:%M}`). Simplified Chinese is the
default; `INTAKE_LANGUAGE=en` makes the process write English. Hooks and handlers take a
`Texts` (the bus and the services provide the configured one as `texts`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

LANGUAGES: tuple[str, ...] = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"
CATALOGUES = Path(__file__).parent / "texts"
LOCAL_TIME = ZoneInfo("Asia/Shanghai")
"""The times in texts are Beijing time."""


@dataclass(frozen=True, slots=True)
class Texts:
    """The messages of one language."""

    language: str
    messages: Mapping[str, str]

    def say(self, key: str, **fields: object) -> str:
        """The message `key` with its fields filled in."""
        return self.messages[key].format(**fields)

    def name(self, group: str, value: str) -> str:
        """The message `group.value`, or `group.other` for a value the catalogue does not name."""
        key = f"{group}.{value}"
        return self.messages[key if key in self.messages else f"{group}.other"]


@cache
def texts_for(language: str) -> Texts:
    """The catalogue of `language` (one of `LANGUAGES`)."""
    if language not in LANGUAGES:
        raise ValueError(f"no messages in {language!r}; one of {', '.join(LANGUAGES)}")
    messages = json.loads((CATALOGUES / f"{language}.json").read_text("utf-8"))
    return Texts(language, messages)


CHINESE = texts_for(DEFAULT_LANGUAGE)
"""The default catalogue."""
