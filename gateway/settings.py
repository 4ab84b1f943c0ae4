"""Settings from the environment (CONTRACT.md, "Configuration"), read once at start.

Every `INTAKE_*` variable intake reads is parsed here, and only here, into typed
frozen sections; a malformed value is a `SettingsError` naming the variable and
what it allows, so a process refuses to start rather than fail on a later request.
Empty or blank values count as unset. The domain's own configuration types
(`SlaConfig`, `LinkParams`, `AutoDispatchConfig` with `DispatchWeights`,
`SmsConfig`) check their rules themselves (`InvalidConfig` names the field);
this module names the variable it came from.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from channels.ami import AmiConfig, parse_url
from channels.errors import ChannelError
from channels.wechat_api import DEFAULT_API_BASE as WECHAT_API_BASE
from channels.wechat_crypto import aes_key
from dispatch.cases.sla import SlaConfig
from dispatch.core.errors import InvalidCommand, InvalidConfig, check_number
from dispatch.core.texts import DEFAULT_LANGUAGE, LANGUAGES
from dispatch.gis.config import DEFAULT_SKILLS, AutoDispatchConfig
from dispatch.gis.nearest import DispatchWeights
from dispatch.gis.skills import CATEGORY_SKILLS
from dispatch.intake.calls import check_recording_template
from dispatch.linking.clustering import LinkParams
from dispatch.personal.retention import RetentionConfig, parse_retention
from dispatch.reports.monthly import ReportsConfig
from gateway.notify import SmsConfig

PROCESS_ROLES: frozenset[str] = frozenset({"all", "gateway", "worker"})
ROLES: frozenset[str] = frozenset({"channel", "agent", "dispatcher", "unit", "auditor", "admin"})
TOKEN_CHANNELS: frozenset[str] = frozenset({"web", "cti", "alarm"})
"""The channels a `channel` token's scope may name: the endpoints that take a bearer token or
`api_key` (Open311 and the citizen form, CTI events, alarm events over HTTP)."""
ORG_SCOPED_ROLES: frozenset[str] = frozenset({"agent", "dispatcher", "auditor"})
"""The roles whose token may be scoped to an organisation node (`token:role:subject:org=NODE`)."""
MIN_TOKEN_LENGTH = 16
"""`intake serve` refuses shorter tokens: a guessable token is as good as none."""
LOG_FORMATS: frozenset[str] = frozenset({"json", "console"})
LOG_LEVELS: frozenset[str] = frozenset({"debug", "info", "warning", "error", "critical"})
SWITCH: Mapping[str, bool] = {"on": True, "true": True, "yes": True, "1": True,
                              "off": False, "false": False, "no": False, "0": False}
"""The words an on/off variable takes (any case)."""
DISABLED = frozenset({"off", "false", "0", "none"})
"""`INTAKE_AUTO_DISPATCH` values that switch automatic dispatch off."""
WORKER_NICE = 10
"""The worker role's default niceness: on a shared host, intake goes first (README, Operations)."""
PRESENCE_TTL = 30.0
"""Seconds an agent stays present without a heartbeat, unless `INTAKE_PRESENCE_TTL` says otherwise."""


class SettingsError(ValueError):
    """A configuration value is malformed; the message names the variable and what it allows."""


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and who it stands for.

    `scope` lists the channels a `channel` token may post to (`TOKEN_CHANNELS`);
    None: every channel (and for other roles, always None). `org` is the organisation node
    an agent's, dispatcher's or auditor's token is scoped to (its subtree); None: all of it.
    """

    role: str
    subject: str
    scope: frozenset[str] | None = None
    org: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    """What this process does and how it logs."""

    role: str = "all"  # INTAKE_ROLE
    nice: int = 0  # INTAKE_NICE
    log_format: str = "json"  # INTAKE_LOG_FORMAT
    log_level: str = "info"  # INTAKE_LOG_LEVEL
    language: str = DEFAULT_LANGUAGE  # INTAKE_LANGUAGE: what SMS and WeChat texts are written in
    lease_seconds: float = 1.0  # INTAKE_LEASE_SECONDS: a worker's partition leases (eventstore/leadership.py)

    def __post_init__(self) -> None:
        check_number("lease_seconds", self.lease_seconds, 0.1, 60.0)


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where the log and the caches live, and how the log is written and sealed."""

    database_url: str | None = None  # INTAKE_DATABASE_URL; None: an embedded PostgreSQL
    redis_url: str | None = None  # INTAKE_REDIS_URL; None: an embedded Redis
    redis_prefix: str = "intake:"  # INTAKE_REDIS_PREFIX
    data_dir: Path = Path(".intake")  # INTAKE_DATA_DIR
    group_commit: bool = True  # INTAKE_GROUP_COMMIT
    seal_key: bytes | None = None  # INTAKE_SEAL_KEY; None: seals are plain SHA-256
    pseudonym_key: bytes | None = None  # INTAKE_PSEUDONYM_KEY; None: a development key (say so in logs)
    allow_owner: bool = False  # INTAKE_ALLOW_OWNER: serve as a superuser or the log's owner anyway
    app_role: str = "intake_app"  # INTAKE_APP_ROLE: the role `intake migrate` grants (and embedded uses)
    app_password: str | None = None  # INTAKE_APP_PASSWORD: set on that role by `intake migrate`
    pool_size: int = 20  # INTAKE_DB_POOL_SIZE: most PostgreSQL connections of this process's pool


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The HTTP bind, the public base URL and the bearer tokens."""

    host: str = "127.0.0.1"  # INTAKE_HTTP_HOST
    port: int = 8080  # INTAKE_HTTP_PORT
    public_url: str | None = None  # INTAKE_PUBLIC_URL, without a trailing slash
    tokens: Mapping[str, Token] = field(default_factory=dict)  # INTAKE_TOKENS


@dataclass(frozen=True, slots=True)
class TwilioSettings:
    """Secrets Twilio signs its webhooks with; no auth token: the Twilio endpoints answer 503."""

    auth_token: str | None = None  # INTAKE_TWILIO_AUTH_TOKEN
    shared_key: str | None = None  # INTAKE_TWILIO_SHARED_KEY


@dataclass(frozen=True, slots=True)
class WechatSettings:
    """The WeChat official account; no token: the endpoint answers 503."""

    token: str | None = None  # INTAKE_WECHAT_TOKEN
    aes_key: str | None = None  # INTAKE_WECHAT_AES_KEY (43 characters): safe mode, plain pushes refused
    appid: str | None = None  # INTAKE_WECHAT_APPID, needed with the AES key
    secret: str | None = None  # INTAKE_WECHAT_SECRET: with the AppID, messages go out by the API
    api_base: str = WECHAT_API_BASE  # INTAKE_WECHAT_API_BASE
    replay_window: int = 300  # INTAKE_WECHAT_REPLAY_WINDOW: seconds a signed timestamp stays valid

    def __post_init__(self) -> None:
        if self.aes_key and not self.appid:
            raise InvalidConfig("appid", "is needed when INTAKE_WECHAT_AES_KEY is set (safe mode)")
        if self.secret and not self.appid:
            raise InvalidConfig("appid", "is needed when INTAKE_WECHAT_SECRET is set (outbound messages)")
        if not self.api_base.startswith(("http://", "https://")):
            raise InvalidConfig("api_base", "must be an http:// or https:// URL")


@dataclass(frozen=True, slots=True)
class SiaSettings:
    """The SIA DC-09 receiver: port (0 disables it) and AES keys by account."""

    port: int = 7100  # INTAKE_SIA_PORT
    keys: Mapping[str, bytes] = field(default_factory=dict)  # INTAKE_SIA_KEYS


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """The agent console: its map tiles and how long an agent stays present."""

    map_tiles: str = ""  # INTAKE_MAP_TILES; empty: polygons only
    presence_ttl: float = PRESENCE_TTL  # INTAKE_PRESENCE_TTL, seconds
    recording_url: str = ""  # INTAKE_RECORDING_URL; empty: recordings are listed without a link

    def __post_init__(self) -> None:
        check_number("presence_ttl", self.presence_ttl, 0.0, above_low=True)


DEFAULT_ORG_ROUTES: Mapping[str, str] = {"power_fault": "GRID", "voltage_anomaly": "GRID"}
"""Categories routed straight to a node rather than to their district's sub-centre (the grid
branch, whose crews the automatic dispatch sends); a node that is not loaded is skipped."""


@dataclass(frozen=True, slots=True)
class OrgSettings:
    """The organisation: where new cases of a category go straight (`INTAKE_ORG_ROUTES`)."""

    routes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ORG_ROUTES))


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting intake reads, by section; all optional (see the README)."""

    process: ProcessSettings = field(default_factory=ProcessSettings)
    stores: StoreSettings = field(default_factory=StoreSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    twilio: TwilioSettings = field(default_factory=TwilioSettings)
    wechat: WechatSettings = field(default_factory=WechatSettings)
    sia: SiaSettings = field(default_factory=SiaSettings)
    ami: AmiConfig | None = None  # INTAKE_AMI_URL; None: AMI off
    notifications: SmsConfig = field(default_factory=SmsConfig)
    sla: SlaConfig = field(default_factory=SlaConfig)
    linking: LinkParams = field(default_factory=LinkParams)
    dispatch: AutoDispatchConfig = field(default_factory=AutoDispatchConfig)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    org: OrgSettings = field(default_factory=OrgSettings)
    reports: ReportsConfig = field(default_factory=ReportsConfig)  # INTAKE_REPORTS_DIR
    retention: RetentionConfig = field(default_factory=RetentionConfig)  # INTAKE_RETENTION


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Var:
    """One environment variable: its name, how its text becomes a value, whether it is secret.

    `parse` raises `ValueError` whose message says what is allowed; a secret's
    value is never repeated in an error.
    """

    name: str
    parse: Callable[[str], object] = str
    secret: bool = False


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return None if value is None or value.strip() == "" else value


def _refused(var: Var, raw: str | None, rule: str) -> SettingsError:
    shown = f"{var.name}={raw!r}" if raw is not None and not var.secret else var.name
    return SettingsError(f"{shown} {rule}")


def _value(env: Mapping[str, str], var: Var) -> object | None:
    """The parsed value of `var`, None when it is unset."""
    raw = _raw(env, var.name)
    if raw is None:
        return None
    try:
        return var.parse(raw)
    except SettingsError:
        raise
    except ValueError as exc:
        raise _refused(var, raw, str(exc)) from exc


def _section(kind: Callable[..., T], env: Mapping[str, str], variables: Mapping[str, Var],
             **given: object) -> T:
    """`kind` from the variables that are set (the rest keep `given` or the defaults).

    `variables` maps each field to its variable, so a rule the type refuses
    (`InvalidConfig`) is reported under the variable's name.
    """
    values = dict(given)
    for attr, var in variables.items():
        value = _value(env, var)
        if value is not None:
            values[attr] = value
    try:
        return kind(**values)
    except InvalidConfig as exc:
        var = variables[exc.field]
        raise _refused(var, _raw(env, var.name), str(exc)) from exc


def _number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError("is not a number") from exc


def _whole(raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError("is not a whole number") from exc


def _bounded(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError as exc:
            raise ValueError(f"is not {what}") from exc
        if not low <= value <= high:
            raise ValueError(f"is out of range ({low}-{high})")
        return value
    return parse


_port = _bounded(0, 65535, "a port number")


def _one_of(allowed: frozenset[str], *, any_case: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower() if any_case else raw.strip()
        if value not in allowed:
            raise ValueError(f"is not one of {sorted(allowed)}")
        return value
    return parse


def _switch(raw: str) -> bool:
    try:
        return SWITCH[raw.strip().lower()]
    except KeyError as exc:
        raise ValueError("is not on or off") from exc


def _role_name(raw: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", raw):
        raise ValueError("is not a role name (lower-case letters, digits, _)")
    return raw


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw.strip())
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return raw.strip()
    return parse


def _public_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return raw.strip().rstrip("/")


def _recording_url(raw: str) -> str:
    try:
        return check_recording_template(raw.strip())
    except InvalidCommand as exc:
        raise ValueError(str(exc)) from exc


def parse_tokens(value: str) -> dict[str, Token]:
    """`token:role:subject[:scope],...` into a token table; raise on a bad entry.

    A `channel` token's scope names channels joined by `+` (`web`, `web+cti`); an `agent`,
    `dispatcher` or `auditor` token's scope is `org=NODE`, an organisation node id (the token
    sees and acts on that node's subtree; no scope: the whole organisation). Errors name the entry by its
    place, never by any part of the token.
    """
    tokens: dict[str, Token] = {}
    entries = [e.strip() for e in value.split(",")]
    for place, entry in enumerate(entries, start=1):
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) not in (3, 4) or not all(parts):
            raise SettingsError(f"INTAKE_TOKENS entry {place} is not token:role:subject[:scope]")
        token, role, subject = parts[:3]
        if role not in ROLES:
            raise SettingsError(f"INTAKE_TOKENS role {role!r} is not one of {sorted(ROLES)}")
        org = _org_scope(parts[3], role, place) if len(parts) == 4 and parts[3].startswith("org=") else None
        scope = None if len(parts) == 3 or org else _scope(parts[3], role, place)
        if token in tokens:
            raise SettingsError(f"INTAKE_TOKENS entry {place} repeats the token of an earlier entry")
        tokens[token] = Token(role, subject, scope, org)
    return tokens


def _org_scope(raw: str, role: str, place: int) -> str:
    """The node of an `org=NODE` scope, for the roles that take one."""
    node = raw.removeprefix("org=")
    if role not in ORG_SCOPED_ROLES:
        raise SettingsError(f"INTAKE_TOKENS entry {place}: only {', '.join(sorted(ORG_SCOPED_ROLES))} "
                            "tokens are scoped to an organisation node")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", node):
        raise SettingsError(f"INTAKE_TOKENS entry {place} scope is not org= and an organisation node id")
    return node


def _scope(raw: str, role: str, place: int) -> frozenset[str]:
    if role != "channel":
        raise SettingsError(f"INTAKE_TOKENS entry {place}: only a channel token has a scope of channels "
                            f"({', '.join(sorted(ORG_SCOPED_ROLES))} tokens take org=NODE)")
    scope = frozenset(raw.split("+"))
    if not scope <= TOKEN_CHANNELS or "" in scope:
        raise SettingsError(f"INTAKE_TOKENS entry {place} scope {raw!r} is not channels from "
                            f"{sorted(TOKEN_CHANNELS)} joined by +")
    return scope


_SIA_ACCOUNT = re.compile(r"[0-9A-Fa-f]{3,16}")
"""A DC-09 account (`#acct`): 3-16 hex digits."""


def parse_sia_keys(value: str) -> dict[str, bytes]:
    """`account:hexkey,...` into AES keys (16, 24 or 32 bytes) by upper-case account; raise on a bad entry.

    A DC-09 account is 3-16 hex digits, compared case-insensitively (as the receiver and the
    elders' registry do): a key listed under `e0005` must bind the frames of `#E0005`, or that
    account's plain frames, which the key is there to refuse, would be accepted.
    """
    keys: dict[str, bytes] = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        account, _, hexkey = (part.strip() for part in entry.partition(":"))
        if not _SIA_ACCOUNT.fullmatch(account):
            raise SettingsError(f"INTAKE_SIA_KEYS account {account!r} is not 3-16 hex digits")
        try:
            key = bytes.fromhex(hexkey)
        except ValueError as exc:
            raise SettingsError(f"INTAKE_SIA_KEYS key for {account} is not hex") from exc
        if len(key) not in (16, 24, 32):
            raise SettingsError(f"INTAKE_SIA_KEYS entry for {account!r} needs 32, 48 or 64 hex digits")
        keys[account.upper()] = key
    return keys


def _wechat_aes_key(raw: str) -> str:
    try:
        aes_key(raw)
    except ChannelError as exc:
        raise SettingsError(exc.message) from exc
    return raw


def _ami(env: Mapping[str, str]) -> AmiConfig | None:
    raw = _raw(env, AMI)
    try:
        return None if raw is None else parse_url(raw)
    except ChannelError as exc:
        raise SettingsError(exc.message) from exc


def _retention(env: Mapping[str, str]) -> RetentionConfig:
    value = _value(env, RETENTION)
    return value if isinstance(value, RetentionConfig) else RetentionConfig()


def _complete_hours(raw: str) -> dict[int, float]:
    """`level:hours,...` over the default hours (levels not named keep theirs)."""
    hours = dict(SlaConfig().complete_hours)
    for part in filter(None, (p.strip() for p in raw.split(","))):
        level, _, value = part.partition(":")
        try:
            hours[int(level)] = float(value)
        except ValueError as exc:
            raise ValueError(f"entry {part!r} is not priority:hours (e.g. 1:4,2:12)") from exc
    return hours


def _skills(raw: str) -> dict[str, str]:
    """`category:skill,...` (a bare category keeps its default skill); `off` disables."""
    if raw.strip().lower() in DISABLED:
        return {}
    skills: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        category, _, skill = (s.strip() for s in part.partition(":"))
        need = CATEGORY_SKILLS.get(category)
        skills[category] = skill or DEFAULT_SKILLS.get(category) or (need.required if need else category)
    return skills


def _org_routes(raw: str) -> dict[str, str]:
    """`category:node,...`; `off` routes every case by its district."""
    from dispatch.cases.registration import CATEGORIES

    if raw.strip().lower() in DISABLED:
        return {}
    routes: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        category, _, node = (s.strip() for s in part.partition(":"))
        if category not in CATEGORIES or not node:
            raise ValueError(f"is not category:node pairs (categories: {', '.join(CATEGORIES)}) or off")
        routes[category] = node
    return routes


_SLA = {
    "confirm_minutes": Var("INTAKE_SLA_CONFIRM_MINUTES", _number),
    "complete_hours": Var("INTAKE_SLA_COMPLETE_HOURS", _complete_hours),
    "callback_hours": Var("INTAKE_SLA_CALLBACK_HOURS", _number),
    "archive_hours": Var("INTAKE_SLA_ARCHIVE_HOURS", _number),
    "near_fraction": Var("INTAKE_SLA_NEAR_FRACTION", _number),
    "yellow_untouched_days": Var("INTAKE_SLA_YELLOW_DAYS", _number),
    "red_days": Var("INTAKE_SLA_RED_DAYS", _number),
    "chase_interval_minutes": Var("INTAKE_CHASE_INTERVAL_MINUTES", _number),
    "supplement_after_days": Var("INTAKE_SUPPLEMENT_AFTER_DAYS", _number),
}
_LINKING = {
    "radius_m": Var("INTAKE_LINK_RADIUS_M", _number),
    "window_min": Var("INTAKE_LINK_WINDOW_MIN", _number),
    "caller_window_min": Var("INTAKE_LINK_CALLER_WINDOW_MIN", _number),
    "max_links": Var("INTAKE_LINK_MAX_LINKS", _whole),
    "incident_min_cases": Var("INTAKE_INCIDENT_MIN_CASES", _whole),
}
_WEIGHTS = {name: Var(f"INTAKE_DISPATCH_WEIGHT_{name.upper()}", _number)
            for name in ("distance", "skill", "load", "priority")}
_DISPATCH = {
    "skills": Var("INTAKE_AUTO_DISPATCH", _skills),
    "surge_threshold": Var("INTAKE_SURGE_THRESHOLD", _whole),
}
_SMS = {
    "provider": Var("INTAKE_SMS_PROVIDER"),
    "account_sid": Var("INTAKE_TWILIO_ACCOUNT_SID"),
    "auth_token": Var("INTAKE_TWILIO_AUTH_TOKEN", secret=True),
    "sender": Var("INTAKE_SMS_FROM"),
    "api_base": Var("INTAKE_TWILIO_API_BASE"),
}
_PROCESS = {
    "role": Var("INTAKE_ROLE", _one_of(PROCESS_ROLES)),
    "nice": Var("INTAKE_NICE", _bounded(0, 19, "a whole number")),
    "log_format": Var("INTAKE_LOG_FORMAT", _one_of(LOG_FORMATS)),
    "log_level": Var("INTAKE_LOG_LEVEL", _one_of(LOG_LEVELS, any_case=True)),
    "language": Var("INTAKE_LANGUAGE", _one_of(frozenset(LANGUAGES))),
    "lease_seconds": Var("INTAKE_LEASE_SECONDS", _number),
}
_STORES = {
    "database_url": Var("INTAKE_DATABASE_URL", _url("postgresql", "postgres"), secret=True),
    "redis_url": Var("INTAKE_REDIS_URL", _url("redis", "rediss", "unix"), secret=True),
    "redis_prefix": Var("INTAKE_REDIS_PREFIX"),
    "data_dir": Var("INTAKE_DATA_DIR", Path),
    "group_commit": Var("INTAKE_GROUP_COMMIT", _switch),
    "seal_key": Var("INTAKE_SEAL_KEY", lambda raw: raw.encode("utf-8"), secret=True),
    "pseudonym_key": Var("INTAKE_PSEUDONYM_KEY", lambda raw: raw.encode("utf-8"), secret=True),
    "allow_owner": Var("INTAKE_ALLOW_OWNER", _switch),
    "app_role": Var("INTAKE_APP_ROLE", _role_name),
    "app_password": Var("INTAKE_APP_PASSWORD", secret=True),
    "pool_size": Var("INTAKE_DB_POOL_SIZE", _bounded(4, 500, "a whole number")),
}
_HTTP = {
    "host": Var("INTAKE_HTTP_HOST"),
    "port": Var("INTAKE_HTTP_PORT", _port),
    "public_url": Var("INTAKE_PUBLIC_URL", _public_url),
    "tokens": Var("INTAKE_TOKENS", parse_tokens, secret=True),
}
_TWILIO = {
    "auth_token": Var("INTAKE_TWILIO_AUTH_TOKEN", secret=True),
    "shared_key": Var("INTAKE_TWILIO_SHARED_KEY", secret=True),
}
_WECHAT = {
    "token": Var("INTAKE_WECHAT_TOKEN", secret=True),
    "aes_key": Var("INTAKE_WECHAT_AES_KEY", _wechat_aes_key, secret=True),
    "appid": Var("INTAKE_WECHAT_APPID"),
    "secret": Var("INTAKE_WECHAT_SECRET", secret=True),
    "api_base": Var("INTAKE_WECHAT_API_BASE"),
    "replay_window": Var("INTAKE_WECHAT_REPLAY_WINDOW", _bounded(30, 3600, "a number of seconds")),
}
_SIA = {
    "port": Var("INTAKE_SIA_PORT", _port),
    "keys": Var("INTAKE_SIA_KEYS", parse_sia_keys, secret=True),
}
_CONSOLE = {
    "map_tiles": Var("INTAKE_MAP_TILES"),
    "presence_ttl": Var("INTAKE_PRESENCE_TTL", _number),
    "recording_url": Var("INTAKE_RECORDING_URL", _recording_url),
}
_ORG = {"routes": Var("INTAKE_ORG_ROUTES", _org_routes)}
_REPORTS = {"directory": Var("INTAKE_REPORTS_DIR", Path)}
AMI = "INTAKE_AMI_URL"
RETENTION = Var("INTAKE_RETENTION", parse_retention)

VARIABLES: frozenset[str] = frozenset({AMI, RETENTION.name} | {
    v.name for table in (_PROCESS, _STORES, _HTTP, _TWILIO, _WECHAT, _SIA, _CONSOLE, _SMS,
                         _SLA, _LINKING, _WEIGHTS, _DISPATCH, _ORG, _REPORTS) for v in table.values()})
"""The name of every variable intake reads."""


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Every setting from the environment (or a given mapping); `SettingsError` names a bad one."""
    env = os.environ if env is None else env
    process = _section(ProcessSettings, env, _PROCESS)
    if _raw(env, "INTAKE_NICE") is None and process.role == "worker":
        process = dataclasses.replace(process, nice=WORKER_NICE)
    twilio = _section(TwilioSettings, env, _TWILIO)
    sms_provider = "twilio" if _raw(env, "INTAKE_TWILIO_ACCOUNT_SID") and twilio.auth_token else "log"
    weights = _section(DispatchWeights, env, _WEIGHTS)
    http = _section(HttpSettings, env, _HTTP)
    stores = _section(StoreSettings, env, _STORES)
    reports = _section(ReportsConfig, env, _REPORTS)
    # Twilio reports what became of each SMS to the webhook it signs (so only with its auth token)
    status_callback = (f"{http.public_url}/channels/twilio/sms-status"
                       if twilio.auth_token and http.public_url else "")
    settings = Settings(
        process=process,
        stores=stores,
        http=http,
        twilio=twilio,
        wechat=_section(WechatSettings, env, _WECHAT),
        sia=_section(SiaSettings, env, _SIA),
        ami=_ami(env),
        notifications=_section(SmsConfig, env, _SMS, provider=sms_provider,
                               status_callback=status_callback),
        sla=_section(SlaConfig, env, _SLA),
        linking=_section(LinkParams, env, _LINKING),
        dispatch=_section(AutoDispatchConfig, env, _DISPATCH, weights=weights),
        console=_section(ConsoleSettings, env, _CONSOLE),
        org=_section(OrgSettings, env, _ORG),
        reports=reports,
        retention=_retention(env),
    )
    if twilio.auth_token and http.public_url is None:
        # Twilio signs the URL it was configured with; behind a proxy or a load balancer the
        # URL a request arrives on differs, and its Host header is the sender's to choose.
        raise SettingsError("INTAKE_PUBLIC_URL must be set when INTAKE_TWILIO_AUTH_TOKEN is "
                            "(the external URL Twilio signs, e.g. https://intake.example.cn)")
    return settings

