"""The console's message catalogues: every key the code asks for is in both languages, and the
catalogue names every value the API can show (statuses, categories, channels, actions, error codes).

Keys are found by reading the console's and the citizen form's JavaScript: `t('key')` literals,
the families built from a name (`t(`fact.${key}`)` and friends) and the groups of `tn(group, value)`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from dispatch.cases.actions import ASSIGNEE_KINDS, CALLBACK_OUTCOMES
from dispatch.cases.events import AWAITING_PHONE, LOCATION_SOURCES
from dispatch.cases.registration import CATEGORIES, POWER_FAULT_REQUIRED
from dispatch.cases.state import CaseState
from dispatch.cases.status import CaseStatus
from dispatch.elderly.alarms import UNREGISTERED
from dispatch.gis.skills import CATEGORY_SKILLS
from dispatch.intake.contact import CHANNELS
from dispatch.knowledge.articles import KINDS as ARTICLE_KINDS
from dispatch.knowledge.articles import STATUSES as ARTICLE_STATUSES
from dispatch.reports.definitions import PERIODS, REPORTS
from gateway.settings import ROLES
from gateway.views.cases import ACTIONS

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "gateway" / "static"
CATALOGUES = STATIC / "console" / "i18n"
LANGUAGES = ("zh-CN", "en")
SOURCES = sorted((STATIC / "console").glob("*.js")) + sorted((STATIC / "citizen").glob("*.js"))
PAGES = sorted(STATIC.glob("*/*.html"))


def _catalogue(lang: str) -> dict[str, str]:
    data = json.loads((CATALOGUES / f"{lang}.json").read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def _code() -> str:
    return "\n".join(path.read_text("utf-8") for path in SOURCES)


def _error_codes() -> set[str]:
    """Every error code the API answers with: BadRequest codes, domain error codes, envelope codes."""
    codes = {"unauthorized", "forbidden", "not_found", "method_not_allowed"}
    for path in [*ROOT.joinpath("gateway").rglob("*.py"), *ROOT.joinpath("dispatch").rglob("*.py")]:
        text = path.read_text("utf-8")
        codes |= set(re.findall(r'BadRequest\(\s*"(\w+)"', text))
        codes |= set(re.findall(r'^\s+code = "(\w+)"', text, re.M))
        codes |= set(re.findall(r'error_response\(\s*\w+,\s*"(\w+)"', text))
    return codes


def _literal_keys(code: str) -> set[str]:
    in_code = set(re.findall(r"\bt\(\s*'([^'$]+)'", code))
    return in_code | set(re.findall(r'data-i18n(?:-placeholder)?="([^"]+)"', code))


def _tab_names() -> set[str]:
    """The board's tabs (board_tabs.js) and the hint of each (an agent's Mine has its own)."""
    source = (STATIC / "console" / "board_tabs.js").read_text("utf-8")
    tabs = set(re.findall(r"'([a-z]+)'", re.search(r"TABS = \{([^}]+)\}", source).group(1)))  # type: ignore[union-attr]
    return tabs | {f"{tab}_hint" for tab in tabs} | {"mine_agent_hint"}


def _missing_field_key(path: str) -> str:
    """The name timeline.js's `fieldName` gives a missing field's path: the joined path when the
    registration form has a label for it (`fault_scope`), else its last part (`caller.name`: `name`)."""
    joined = path.replace(".", "_", 1)
    return joined if f"reg.field.{joined}" in _catalogue("zh-CN") else path.split(".")[-1]


def _family_keys(code: str) -> set[str]:
    """Keys built from a name: each family's names read from the code that builds them."""
    detail = (STATIC / "console" / "detail.js").read_text("utf-8")
    board = (STATIC / "console" / "board.js").read_text("utf-8")
    panels = (STATIC / "console" / "panels.js").read_text("utf-8")
    families = {
        "fact": set(re.findall(r"\bfact\('([a-z_]+)'", detail)),
        "field": set(re.findall(r"(?:\[\[|\], \[)'([a-z_]+)'", detail)),  # [name, choices, optional]
        "board.filter": set(re.findall(r"\bselect\('([a-z]+)'", board)),
        "board.col": set(re.findall(r"'([a-z]+)'", re.search(r"\[('', [^\]]+)\]", board).group(1))) - {""},  # type: ignore[union-attr]
        "kpi": set(re.findall(r"missing\('([a-z_]+)'\)", panels)),
        "time": {"s", "min", "h", "d"},
        "due": {"m", "h", "d"},
        "board_tabs": _tab_names(),
        "reg.field": {_missing_field_key(path) for path in POWER_FAULT_REQUIRED},
        "value": {"true", "false"},  # a boolean of the state, as timeline.js shows it
    }
    assert all(families.values()), families
    for prefix in re.findall(r"\bt\(\s*`([a-z_.]+)\.\$\{", code):
        assert prefix in families or prefix == "error", f"a family of keys the test does not know: {prefix}"
    return {f"{prefix}.{name}" for prefix, names in families.items() for name in names}


GROUPS: dict[str, set[str]] = {
    "status": {s.value for s in CaseStatus} - {"new"},
    "category": set(CATEGORIES),
    "channel": set(CHANNELS),
    "light": {"red", "yellow", "green"},
    "priority": {"1", "2", "3", "4"},
    "role": set(ROLES),
    "action": set(ACTIONS),
    "kind": set(ASSIGNEE_KINDS),
    "outcome": set(CALLBACK_OUTCOMES),
    "approve": {"true", "false"},
    "conn": {"connecting", "live", "polling", "reconnecting", "unauthorized"},
    "lang": set(LANGUAGES),
    "incident_status": {"open", "resolved", "merged"},
    "skill": {s for need in CATEGORY_SKILLS.values() for s in need.skills} | {"transformer"},
    "state": {f.name for f in dataclasses.fields(CaseState)},
    "event": {"CaseRegistered", "CaseClassified", "CaseDispatched", "CaseConfirmed", "CaseRejected",
              "ExtensionRequested", "ExtensionDecided", "FeedbackGiven", "CaseCompleted", "CallbackRecorded",
              "CaseArchived", "CaseClosed", "CaseSupplemented", "CaseChased", "CaseLinked", "CaseUnlinked",
              "CaseMoved", "CaseLegalHoldSet", "CaseLegalHoldReleased", "CaseLocated", "ReminderSet",
              "ReminderDue"},
    "flag": {AWAITING_PHONE, UNREGISTERED},
    "citizen.attr": {"account_number", "fault_type", "fault_began_at", "fault_scope", "customer_type",
                     "special_needs", "service_time"},
    "citizen.value": set(),  # filled from the Open311 channel below
    "article_kind": set(ARTICLE_KINDS),
    "article_status": set(ARTICLE_STATUSES),
    "location_source": set(LOCATION_SOURCES),
    "report.name": set(REPORTS),
    "report.by": set(PERIODS),
    "report.group": {group for report in REPORTS.values() for group in report.groups},
}


def _groups() -> dict[str, set[str]]:
    from channels.open311 import ATTRIBUTES, VALUES

    groups = dict(GROUPS)
    groups["citizen.attr"] = {name for attrs in ATTRIBUTES.values() for name, *_ in attrs}
    groups["citizen.value"] = {v for values in VALUES.values() for v in values}
    groups["error"] = _error_codes()
    groups["actor"] = _actors()
    return groups


def _actors() -> set[str]:
    """Who the log records besides a role's subject: the kinds (`device`, `cli`...) and every
    automatic rule or task by name (`policy:linking` is `actor.policy.linking`)."""
    named = set()
    for path in [*ROOT.joinpath("gateway").rglob("*.py"), *ROOT.joinpath("dispatch").rglob("*.py"),
                 *ROOT.joinpath("channels").rglob("*.py")]:
        named |= {f"{kind}.{name}" for kind, name in
                  re.findall(r'"(policy|system|worker):([a-z_\-]+)"', path.read_text("utf-8"))}
    assert len(named) > 10
    return named | {"policy", "system", "worker", "device", "cli"}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_key_the_code_asks_for_is_in_the_catalogue(lang: str) -> None:
    catalogue = _catalogue(lang)
    code = _code() + "\n".join(p.read_text("utf-8") for p in PAGES)
    wanted = _literal_keys(code) | _family_keys(code)
    assert len(wanted) > 100
    assert sorted(wanted - catalogue.keys()) == []


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_catalogue_names_every_value_the_api_can_show(lang: str) -> None:
    catalogue = _catalogue(lang)
    groups = _groups()
    used = set(re.findall(r"\btn\(\s*'([a-z_.]+)'", _code()))
    assert used <= groups.keys() | {"citizen.attr", "citizen.value"}, used - groups.keys()
    missing = {f"{group}.{value}" for group in groups for value in groups[group]} - catalogue.keys()
    assert sorted(missing) == []
    # filters and form choices list what the catalogue names: nothing the API never shows
    assert {k.split(".", 1)[1] for k in catalogue if k.startswith("status.")} == groups["status"]


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    zh, en = (_catalogue(lang) for lang in LANGUAGES)
    assert sorted(zh.keys() ^ en.keys()) == []
    for key in zh:
        assert set(re.findall(r"\{\w+\}", zh[key])) == set(re.findall(r"\{\w+\}", en[key])), key
        assert zh[key].strip() or key == "citizen.required", key


def test_chinese_is_chinese() -> None:
    """No English left in the Chinese catalogue, beyond names of things (SMS, P1, openid...)."""
    allowed = {"intake", "English", "JavaScript", "DC", "UTF", "SMS"}
    for key, text in _catalogue("zh-CN").items():
        words = set(re.findall(r"[A-Za-z]{2,}", re.sub(r"\{\w+\}", "", text))) - allowed
        assert not words, (key, text)


def test_no_user_visible_text_in_code() -> None:
    """Text nodes and labels in the console's code come from the catalogue, not string literals.

    A literal with a capitalised English word, or any Chinese character, inside the console's
    JavaScript is text that would bypass the catalogue.
    """
    for path in SOURCES:
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if line.lstrip().startswith(("//", "*", "/*")):
                continue
            literals = re.findall(r"'([^'\\]*)'|`([^`\\]*)`", line)
            for single, template in literals:
                text = single or template
                assert not re.search(r"[\u4e00-\u9fff]", text), f"{path.name}:{number}: {text}"
                assert not re.search(r"(^|\s)[A-Z][a-z]+ [a-z]+", text), f"{path.name}:{number}: {text}"
