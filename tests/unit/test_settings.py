"""Every `INTAKE_*` variable is read into its typed field, and refused by name when invalid."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from channels.ami import AmiConfig
from channels.twilio_rest import DEFAULT_API_BASE
from gateway.settings import VARIABLES, Settings, SettingsError, Token, from_env, parse_tokens

ROOT = Path(__file__).resolve().parents[2]
AES_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"  # 43 characters: bytes 0..31
PUBLIC = {"INTAKE_PUBLIC_URL": "https://intake.example"}  # required with the Twilio auth token
SID = {"INTAKE_TWILIO_ACCOUNT_SID": "AC1", "INTAKE_TWILIO_AUTH_TOKEN": "tok", **PUBLIC}
Get = Callable[[Settings], Any]


# variable, value set, the field read, what it holds then, what it holds when unset; extra env
READS: list[tuple[str, str, Get, Any, Any, Mapping[str, str]]] = [
    ("INTAKE_ROLE", "worker", lambda s: s.process.role, "worker", "all", {}),
    ("INTAKE_NICE", "5", lambda s: s.process.nice, 5, 0, {}),
    ("INTAKE_LOG_FORMAT", "console", lambda s: s.process.log_format, "console", "json", {}),
    ("INTAKE_LOG_LEVEL", "WARNING", lambda s: s.process.log_level, "warning", "info", {}),
    ("INTAKE_DATABASE_URL", "postgresql://u:p@db:5432/intake", lambda s: s.stores.database_url,
     "postgresql://u:p@db:5432/intake", None, {}),
    ("INTAKE_REDIS_URL", "redis://cache:6379/1", lambda s: s.stores.redis_url, "redis://cache:6379/1",
     None, {}),
    ("INTAKE_REDIS_PREFIX", "site2:", lambda s: s.stores.redis_prefix, "site2:", "intake:", {}),
    ("INTAKE_DATA_DIR", "/var/lib/intake", lambda s: s.stores.data_dir, Path("/var/lib/intake"),
     Path(".intake"), {}),
    ("INTAKE_GROUP_COMMIT", "off", lambda s: s.stores.group_commit, False, True, {}),
    ("INTAKE_SEAL_KEY", "s3cret", lambda s: s.stores.seal_key, b"s3cret", None, {}),
    ("INTAKE_PSEUDONYM_KEY", "p5eudo", lambda s: s.stores.pseudonym_key, b"p5eudo", None, {}),
    ("INTAKE_ALLOW_OWNER", "1", lambda s: s.stores.allow_owner, True, False, {}),
    ("INTAKE_APP_ROLE", "hotline_app", lambda s: s.stores.app_role, "hotline_app", "intake_app", {}),
    ("INTAKE_DB_POOL_SIZE", "8", lambda s: s.stores.pool_size, 8, 20, {}),
    ("INTAKE_APP_PASSWORD", "pw", lambda s: s.stores.app_password, "pw", None, {}),
    ("INTAKE_HTTP_HOST", "0.0.0.0", lambda s: s.http.host, "0.0.0.0", "127.0.0.1", {}),
    ("INTAKE_HTTP_PORT", "9000", lambda s: s.http.port, 9000, 8080, {}),
    ("INTAKE_PUBLIC_URL", "https://intake.example/", lambda s: s.http.public_url,
     "https://intake.example", None, {}),
    ("INTAKE_TOKENS", "t1:agent:A1, t2:unit:U1", lambda s: s.http.tokens,
     {"t1": Token("agent", "A1"), "t2": Token("unit", "U1")}, {}, {}),
    ("INTAKE_TOKENS", "t1:channel:portal:web, t2:channel:pbx:cti+alarm, t3:channel:all",
     lambda s: s.http.tokens,
     {"t1": Token("channel", "portal", frozenset({"web"})),
      "t2": Token("channel", "pbx", frozenset({"cti", "alarm"})), "t3": Token("channel", "all")}, {}, {}),
    ("INTAKE_TWILIO_AUTH_TOKEN", "tok", lambda s: (s.twilio.auth_token, s.notifications.auth_token),
     ("tok", "tok"), (None, ""), PUBLIC),
    ("INTAKE_TWILIO_SHARED_KEY", "sk", lambda s: s.twilio.shared_key, "sk", None, {}),
    ("INTAKE_WECHAT_TOKEN", "wt", lambda s: s.wechat.token, "wt", None, {}),
    ("INTAKE_WECHAT_AES_KEY", AES_KEY, lambda s: s.wechat.aes_key, AES_KEY, None,
     {"INTAKE_WECHAT_APPID": "wx123"}),
    ("INTAKE_WECHAT_APPID", "wx123", lambda s: s.wechat.appid, "wx123", None, {}),
    ("INTAKE_WECHAT_REPLAY_WINDOW", "120", lambda s: s.wechat.replay_window, 120, 300, {}),
    ("INTAKE_WECHAT_SECRET", "appsecret", lambda s: s.wechat.secret, "appsecret", None,
     {"INTAKE_WECHAT_APPID": "wx123"}),
    ("INTAKE_WECHAT_API_BASE", "http://127.0.0.1:9/", lambda s: s.wechat.api_base, "http://127.0.0.1:9/",
     "https://api.weixin.qq.com", {}),
    ("INTAKE_SIA_PORT", "0", lambda s: s.sia.port, 0, 7100, {}),
    ("INTAKE_SIA_KEYS", "1234:" + "00" * 16, lambda s: s.sia.keys, {"1234": bytes(16)}, {}, {}),
    ("INTAKE_SIA_KEYS", "e0005:" + "00" * 16 + ", abc : " + "11" * 24, lambda s: s.sia.keys,
     {"E0005": bytes(16), "ABC": b"\x11" * 24}, {}, {}),
    ("INTAKE_AMI_URL", "ami://u:s%40x@pbx:5039", lambda s: s.ami, AmiConfig("pbx", 5039, "u", "s@x"),
     None, {}),
    ("INTAKE_SMS_PROVIDER", "twilio", lambda s: s.notifications.provider, "twilio", "twilio", SID),
    ("INTAKE_SMS_PROVIDER", "log", lambda s: s.notifications.provider, "log", "twilio", SID),
    ("INTAKE_TWILIO_ACCOUNT_SID", "AC1", lambda s: (s.notifications.account_sid, s.notifications.provider),
     ("AC1", "twilio"), ("", "log"), {"INTAKE_TWILIO_AUTH_TOKEN": "tok", **PUBLIC}),
    ("INTAKE_TWILIO_ACCOUNT_SID", "AC1", lambda s: s.notifications.provider, "log", "log", {}),
    ("INTAKE_SMS_FROM", "+8610086", lambda s: s.notifications.sender, "+8610086", "", {}),
    ("INTAKE_TWILIO_API_BASE", "http://127.0.0.1:9", lambda s: s.notifications.api_base,
     "http://127.0.0.1:9", DEFAULT_API_BASE, {}),
    ("INTAKE_SLA_CONFIRM_MINUTES", "10", lambda s: s.sla.confirm_minutes, 10.0, 30.0, {}),
    ("INTAKE_SLA_COMPLETE_HOURS", "1:2, 3:48", lambda s: s.sla.complete_hours,
     {1: 2.0, 2: 12.0, 3: 48.0, 4: 72.0}, {1: 4.0, 2: 12.0, 3: 72.0, 4: 72.0}, {}),
    ("INTAKE_SLA_CALLBACK_HOURS", "6", lambda s: s.sla.callback_hours, 6.0, 12.0, {}),
    ("INTAKE_SLA_ARCHIVE_HOURS", "48", lambda s: s.sla.archive_hours, 48.0, 24.0, {}),
    ("INTAKE_SLA_NEAR_FRACTION", "0.5", lambda s: s.sla.near_fraction, 0.5, 0.2, {}),
    ("INTAKE_SLA_YELLOW_DAYS", "3", lambda s: s.sla.yellow_untouched_days, 3.0, 5.0, {}),
    ("INTAKE_SLA_RED_DAYS", "4", lambda s: s.sla.red_days, 4.0, 7.0, {}),
    ("INTAKE_CHASE_INTERVAL_MINUTES", "5", lambda s: s.sla.chase_interval_minutes, 5.0, 15.0, {}),
    ("INTAKE_SUPPLEMENT_AFTER_DAYS", "0", lambda s: s.sla.supplement_after_days, 0.0, 7.0, {}),
    ("INTAKE_LINK_RADIUS_M", "750", lambda s: s.linking.radius_m, 750.0, 1000.0, {}),
    ("INTAKE_LINK_WINDOW_MIN", "45", lambda s: s.linking.window_min, 45.0, 60.0, {}),
    ("INTAKE_LINK_CALLER_WINDOW_MIN", "720", lambda s: s.linking.caller_window_min, 720.0, 1440.0, {}),
    ("INTAKE_LINK_MAX_LINKS", "5", lambda s: s.linking.max_links, 5, 3, {}),
    ("INTAKE_INCIDENT_MIN_CASES", "4", lambda s: s.linking.incident_min_cases, 4, 3, {}),
    ("INTAKE_DISPATCH_WEIGHT_DISTANCE", "1.5", lambda s: s.dispatch.weights.distance, 1.5, 1.0, {}),
    ("INTAKE_DISPATCH_WEIGHT_SKILL", "2", lambda s: s.dispatch.weights.skill, 2.0, 5.0, {}),
    ("INTAKE_DISPATCH_WEIGHT_LOAD", "0", lambda s: s.dispatch.weights.load, 0.0, 3.0, {}),
    ("INTAKE_DISPATCH_WEIGHT_PRIORITY", "20", lambda s: s.dispatch.weights.priority, 20.0, 10.0, {}),
    ("INTAKE_AUTO_DISPATCH", "power_fault:line_repair, elderly_emergency:medical, voltage_anomaly",
     lambda s: s.dispatch.skills,
     {"power_fault": "line_repair", "elderly_emergency": "medical", "voltage_anomaly": "power_repair"},
     {"power_fault": "power_repair", "voltage_anomaly": "power_repair"}, {}),
    ("INTAKE_AUTO_DISPATCH", "off", lambda s: s.dispatch.skills, {},
     {"power_fault": "power_repair", "voltage_anomaly": "power_repair"}, {}),
    ("INTAKE_SURGE_THRESHOLD", "3", lambda s: s.dispatch.surge_threshold, 3, 5, {}),
    ("INTAKE_ORG_ROUTES", "power_fault:GRID2, complaint:XY12345", lambda s: s.org.routes,
     {"power_fault": "GRID2", "complaint": "XY12345"},
     {"power_fault": "GRID", "voltage_anomaly": "GRID"}, {}),
    ("INTAKE_ORG_ROUTES", "off", lambda s: s.org.routes, {},
     {"power_fault": "GRID", "voltage_anomaly": "GRID"}, {}),
    ("INTAKE_REPORTS_DIR", "/srv/reports", lambda s: s.reports.directory, Path("/srv/reports"), None, {}),
    ("INTAKE_RETENTION", "default=2y, complaint=5y, elderly_emergency=1y30d", lambda s: str(s.retention),
     "default=2y,complaint=5y,elderly_emergency=1y30d", "default=3y", {}),
    ("INTAKE_RETENTION", "consultation=180d", lambda s: (str(s.retention.period("consultation")),
                                                         str(s.retention.period("complaint"))),
     ("180d", "3y"), ("3y", "3y"), {}),
    ("INTAKE_MAP_TILES", "https://tiles.example/{z}/{x}/{y}.png", lambda s: s.console.map_tiles,
     "https://tiles.example/{z}/{x}/{y}.png", "", {}),
    ("INTAKE_PRESENCE_TTL", "2.5", lambda s: s.console.presence_ttl, 2.5, 30.0, {}),
    ("INTAKE_RECORDING_URL", "https://pbx.example/rec/{call_id}.wav", lambda s: s.console.recording_url,
     "https://pbx.example/rec/{call_id}.wav", "", {}),
    ("INTAKE_LANGUAGE", "en", lambda s: s.process.language, "en", "zh-CN", {}),
    ("INTAKE_LEASE_SECONDS", "0.5", lambda s: s.process.lease_seconds, 0.5, 1.0, {}),
]


@pytest.mark.parametrize(("name", "raw", "get", "value", "default", "extra"), READS,
                         ids=[f"{r[0]}={r[1][:12]}" for r in READS])
def test_each_variable_lands_in_its_field(
    name: str, raw: str, get: Get, value: Any, default: Any, extra: Mapping[str, str]
) -> None:
    assert get(from_env({**extra, name: raw})) == value
    unset = {k: v for k, v in extra.items() if k != name}
    assert get(from_env(unset)) == default
    assert get(from_env({**unset, name: "  "})) == default  # blank counts as unset


# variable, an invalid value, what the message says is allowed; extra env
REFUSED: list[tuple[str, str, str, Mapping[str, str]]] = [
    ("INTAKE_ROLE", "everything", "one of ['all', 'gateway', 'worker']", {}),
    ("INTAKE_NICE", "20", "out of range (0-19)", {}),
    ("INTAKE_NICE", "ten", "not a whole number", {}),
    ("INTAKE_DB_POOL_SIZE", "3", "out of range (4-500)", {}),
    ("INTAKE_DB_POOL_SIZE", "many", "not a whole number", {}),
    ("INTAKE_LOG_FORMAT", "xml", "one of ['console', 'json']", {}),
    ("INTAKE_LOG_LEVEL", "loud", "one of ['critical', 'debug', 'error', 'info', 'warning']", {}),
    ("INTAKE_DATABASE_URL", "mysql://u:pw@db/intake", "postgresql:// or postgres://", {}),
    ("INTAKE_REDIS_URL", "cache:6379", "redis:// or rediss:// or unix://", {}),
    ("INTAKE_GROUP_COMMIT", "maybe", "on or off", {}),
    ("INTAKE_ALLOW_OWNER", "sure", "on or off", {}),
    ("INTAKE_APP_ROLE", "App-Role", "is not a role name", {}),
    ("INTAKE_HTTP_PORT", "http", "not a port number", {}),
    ("INTAKE_HTTP_PORT", "65536", "out of range (0-65535)", {}),
    ("INTAKE_PUBLIC_URL", "intake.example", "http:// or https:// URL", {}),
    ("INTAKE_TOKENS", "t1:boss:x", "is not one of", {}),
    ("INTAKE_TOKENS", "t1:agent", "token:role:subject", {}),
    ("INTAKE_TOKENS", "t1:agent:A1:web", "only a channel token has a scope", {}),
    ("INTAKE_TOKENS", "t1:unit:U1:org=SC1", "only agent, auditor, dispatcher tokens are scoped", {}),
    ("INTAKE_TOKENS", "t1:channel:c:org=SC1", "only agent, auditor, dispatcher tokens are scoped", {}),
    ("INTAKE_TOKENS", "t1:dispatcher:D2:org=", "org= and an organisation node id", {}),
    ("INTAKE_TOKENS", "t1:dispatcher:D2:org=a b", "org= and an organisation node id", {}),
    ("INTAKE_ORG_ROUTES", "power_fault", "category:node pairs", {}),
    ("INTAKE_ORG_ROUTES", "lunch:GRID", "category:node pairs", {}),
    ("INTAKE_TOKENS", "t1:channel:c:web+sms", "channels from ['alarm', 'cti', 'web'] joined by +", {}),
    ("INTAKE_TOKENS", "t1:channel:c:", "token:role:subject[:scope]", {}),
    ("INTAKE_TOKENS", "t1:agent:A1,t1:unit:U1", "repeats the token", {}),
    ("INTAKE_PUBLIC_URL", "", "must be set when INTAKE_TWILIO_AUTH_TOKEN is",
     {"INTAKE_TWILIO_AUTH_TOKEN": "tok"}),
    ("INTAKE_WECHAT_AES_KEY", "QUJDREVGR0g", "43 characters", {}),  # base64 of 8 bytes
    ("INTAKE_WECHAT_AES_KEY", "!" * 43, "not base64", {}),
    ("INTAKE_WECHAT_APPID", "", "needed when INTAKE_WECHAT_AES_KEY is set",
     {"INTAKE_WECHAT_AES_KEY": AES_KEY}),
    ("INTAKE_WECHAT_REPLAY_WINDOW", "5", "out of range (30-3600)", {}),
    ("INTAKE_WECHAT_APPID", "", "needed when INTAKE_WECHAT_SECRET is set", {"INTAKE_WECHAT_SECRET": "s"}),
    ("INTAKE_WECHAT_API_BASE", "ftp://wx", "http:// or https://", {}),
    ("INTAKE_WECHAT_REPLAY_WINDOW", "5m", "not a number of seconds", {}),
    ("INTAKE_SIA_PORT", "-1", "out of range (0-65535)", {}),
    ("INTAKE_SIA_KEYS", "1234:zz", "not hex", {}),
    ("INTAKE_SIA_KEYS", "1234:0011", "32, 48 or 64 hex digits", {}),
    ("INTAKE_SIA_KEYS", "E-0005:" + "00" * 16, "not 3-16 hex digits", {}),
    ("INTAKE_SIA_KEYS", ":" + "00" * 16, "not 3-16 hex digits", {}),
    ("INTAKE_AMI_URL", "http://pbx:5038", "ami://user:secret@host:port", {}),
    ("INTAKE_SMS_PROVIDER", "pigeon", "one of ['log', 'twilio']", {}),
    ("INTAKE_TWILIO_ACCOUNT_SID", "", "needed to send SMS through Twilio",
     {"INTAKE_SMS_PROVIDER": "twilio", "INTAKE_TWILIO_AUTH_TOKEN": "tok"}),
    ("INTAKE_TWILIO_AUTH_TOKEN", "", "needed to send SMS through Twilio",
     {"INTAKE_SMS_PROVIDER": "twilio", "INTAKE_TWILIO_ACCOUNT_SID": "AC1"}),
    ("INTAKE_TWILIO_API_BASE", "api.twilio.com", "http:// or https:// URL", {}),
    ("INTAKE_SLA_CONFIRM_MINUTES", "soon", "not a number", {}),
    ("INTAKE_SLA_CONFIRM_MINUTES", "-1", "a number >= 0", {}),
    ("INTAKE_SLA_COMPLETE_HOURS", "1-4", "priority:hours", {}),
    ("INTAKE_SLA_COMPLETE_HOURS", "5:1", "priorities [1, 2, 3, 4] only", {}),
    ("INTAKE_SLA_COMPLETE_HOURS", "1:-2", "a number >= 0", {}),
    ("INTAKE_SLA_CALLBACK_HOURS", "-1", "a number >= 0", {}),
    ("INTAKE_SLA_ARCHIVE_HOURS", "nan", "a number >= 0", {}),
    ("INTAKE_SLA_NEAR_FRACTION", "1.5", "a number from 0 to 1", {}),
    ("INTAKE_SLA_YELLOW_DAYS", "-1", "a number >= 0", {}),
    ("INTAKE_SLA_RED_DAYS", "inf", "a number >= 0", {}),
    ("INTAKE_CHASE_INTERVAL_MINUTES", "-5", "a number >= 0", {}),
    ("INTAKE_SUPPLEMENT_AFTER_DAYS", "-1", "a number >= 0", {}),
    ("INTAKE_LINK_RADIUS_M", "0", "a number > 0", {}),
    ("INTAKE_LINK_RADIUS_M", "far", "not a number", {}),
    ("INTAKE_LINK_WINDOW_MIN", "-1", "a number > 0", {}),
    ("INTAKE_LINK_CALLER_WINDOW_MIN", "0", "a number > 0", {}),
    ("INTAKE_LINK_MAX_LINKS", "0", "a whole number >= 1", {}),
    ("INTAKE_LINK_MAX_LINKS", "1.5", "not a whole number", {}),
    ("INTAKE_INCIDENT_MIN_CASES", "0", "a whole number >= 1", {}),
    ("INTAKE_DISPATCH_WEIGHT_DISTANCE", "-1", "a number >= 0", {}),
    ("INTAKE_DISPATCH_WEIGHT_SKILL", "heavy", "not a number", {}),
    ("INTAKE_DISPATCH_WEIGHT_LOAD", "inf", "a number >= 0", {}),
    ("INTAKE_DISPATCH_WEIGHT_PRIORITY", "-0.5", "a number >= 0", {}),
    ("INTAKE_AUTO_DISPATCH", ":power_repair", "category:skill pairs (or off)", {}),
    ("INTAKE_SURGE_THRESHOLD", "-1", "a whole number >= 0", {}),
    ("INTAKE_SURGE_THRESHOLD", "many", "not a whole number", {}),
    ("INTAKE_PRESENCE_TTL", "0", "a number > 0", {}),
    ("INTAKE_RECORDING_URL", "https://pbx.example/rec/{id}.wav", "{call_id} and/or {recording}", {}),
    ("INTAKE_RECORDING_URL", "pbx.example/{call_id}", "http:// or https:// URL template", {}),
    ("INTAKE_LANGUAGE", "fr", "one of ['en', 'zh-CN']", {}),
    ("INTAKE_LEASE_SECONDS", "0.01", "a number from 0.1 to 60", {}),
    ("INTAKE_LEASE_SECONDS", "soon", "is not a number", {}),
    ("INTAKE_RETENTION", "complaint=5", "is not category=period", {}),
    ("INTAKE_RETENTION", "complaint=5 years", "is not category=period", {}),
    ("INTAKE_RETENTION", "3y", "is not category=period", {}),
    ("INTAKE_RETENTION", "lunch=1y", "unknown category 'lunch'", {}),
    ("INTAKE_RETENTION", "default=0y", "no period (at least 1d)", {}),
    ("INTAKE_RETENTION", "complaint=1y,complaint=2y", "names 'complaint' twice", {}),
]
SECRET = {"INTAKE_DATABASE_URL", "INTAKE_REDIS_URL", "INTAKE_TOKENS", "INTAKE_WECHAT_AES_KEY",
          "INTAKE_WECHAT_SECRET", "INTAKE_SIA_KEYS", "INTAKE_AMI_URL", "INTAKE_SEAL_KEY",
          "INTAKE_TWILIO_AUTH_TOKEN", "INTAKE_PSEUDONYM_KEY"}


@pytest.mark.parametrize(("name", "raw", "allowed", "extra"), REFUSED,
                         ids=[f"{r[0]}={r[1][:12]}" for r in REFUSED])
def test_an_invalid_value_is_refused_naming_the_variable(
    name: str, raw: str, allowed: str, extra: Mapping[str, str]
) -> None:
    with pytest.raises(SettingsError) as refused:
        from_env({**extra, name: raw})
    message = str(refused.value)
    assert message.startswith(name), message
    assert allowed in message
    assert "\n" not in message
    if name in SECRET and raw:
        assert raw not in message  # a secret is never repeated, not even a malformed one


def test_the_worker_role_defaults_to_a_lower_priority() -> None:
    assert from_env({"INTAKE_ROLE": "worker"}).process.nice == 10
    assert from_env({"INTAKE_ROLE": "worker", "INTAKE_NICE": "3"}).process.nice == 3


def test_unset_environment_gives_the_documented_defaults() -> None:
    assert from_env({}) == Settings()


def test_every_variable_is_tested_and_documented() -> None:
    assert {r[0] for r in READS} == VARIABLES
    assert {r[0] for r in REFUSED} <= VARIABLES
    documented = set()
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found = re.findall(r"INTAKE_[A-Z0-9_]+", path.read_text("utf-8"))
        documented |= {name for name in found if not name.endswith("_")}  # not a prefix (INTAKE_SLA_*)
    test_and_bench_only = {"INTAKE_TEST_DATABASE_URL", "INTAKE_TEST_REDIS_URL", "INTAKE_GC_PROBE",
                           "INTAKE_TEST_TEMPLATE", "INTAKE_TEST_REUSE_DATABASES"}
    assert documented >= VARIABLES
    assert documented - test_and_bench_only <= VARIABLES


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = []
    for package in ("eventstore", "dispatch", "channels", "gateway"):
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text("utf-8")
            if re.search(r"os\.environ|getenv\(", text) and path != ROOT / "gateway" / "settings.py":
                readers.append(str(path.relative_to(ROOT)))
    assert readers == []


SECRET_TOKEN = "Zq9xK2mVp7LrT4wN"


@pytest.mark.parametrize("entry", [
    f"{SECRET_TOKEN}:agent", f"{SECRET_TOKEN}:boss:x", f"{SECRET_TOKEN}:agent:A1:web",
    f"{SECRET_TOKEN}:channel:c:sms", f"{SECRET_TOKEN}:agent:A1,{SECRET_TOKEN}:unit:U1", f"{SECRET_TOKEN}",
])
def test_no_token_error_shows_any_part_of_the_token(entry: str) -> None:
    with pytest.raises(SettingsError) as refused:
        from_env({"INTAKE_TOKENS": f"ok-token:agent:A9, {entry}"})
    message = str(refused.value)
    pieces = {SECRET_TOKEN[i:i + 3] for i in range(len(SECRET_TOKEN) - 2)}
    assert not [p for p in pieces if p in message], message  # main printed the first four characters


def test_serve_refuses_short_tokens_naming_whose_not_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli.main import COMMANDS

    short = "Zq9xK2mVp7LrT4w"  # 15 characters
    settings = from_env({"INTAKE_TOKENS": f"{short}:unit:U7, {'x' * 16}:agent:A1"})
    for command in ("serve", "demo"):
        assert COMMANDS[command](argparse.Namespace(storm=False), settings) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "shorter than 16" in err and "unit:U7" in err, err
        assert not [short[i:i + 3] for i in range(len(short) - 2) if short[i:i + 3] in err], err


def test_serve_without_the_public_url_beside_the_twilio_token_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli.main import main

    for name in [n for n in VARIABLES if n != "INTAKE_TWILIO_AUTH_TOKEN"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INTAKE_TWILIO_AUTH_TOKEN", "twilio-auth-token-value")
    monkeypatch.setenv("INTAKE_TOKENS", f"{'x' * 16}:admin:ops")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("intake: configuration error: INTAKE_PUBLIC_URL must be set")
    assert "twilio-auth-token-value" not in err[0]


def test_a_token_scoped_to_an_organisation_node_keeps_the_others_unscoped() -> None:
    tokens = parse_tokens(
        "t1:dispatcher:D2:org=SC610402,t2:dispatcher:D1,t3:channel:c:web,t4:agent:A1:org=XY")
    assert tokens["t1"] == Token("dispatcher", "D2", None, "SC610402")
    assert tokens["t2"] == Token("dispatcher", "D1") and tokens["t2"].org is None
    assert tokens["t3"] == Token("channel", "c", frozenset({"web"}))
    assert tokens["t4"].org == "XY" and tokens["t4"].scope is None
