"""Settings from the environment (CONTRACT.md, "Configuration")."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROCESS_ROLES: frozenset[str] = frozenset({"all", "gateway", "worker"})
ROLES: frozenset[str] = frozenset({"channel", "agent", "dispatcher", "unit", "auditor", "admin"})


class SettingsError(ValueError):
    """A configuration value is malformed."""


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and who it stands for."""

    role: str
    subject: str


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting intake reads; all optional (see the README)."""

    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".intake")
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    sia_port: int = 7100
    sia_keys: Mapping[str, bytes] = field(default_factory=dict)
    ami_url: str | None = None
    twilio_auth_token: str | None = None
    public_url: str | None = None
    wechat_token: str | None = None
    wechat_aes_key: str | None = None
    wechat_appid: str | None = None
    tokens: Mapping[str, Token] = field(default_factory=dict)
    redis_prefix: str = "intake:"
    role: str = "all"
    nice: int = 0
    log_format: str = "json"
    log_level: str = "info"
    extra: Mapping[str, str] = field(default_factory=dict)


def parse_tokens(value: str) -> dict[str, Token]:
    """`token:role:subject,...` into a token table; raise on a bad entry."""
    tokens: dict[str, Token] = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        parts = entry.split(":")
        if len(parts) != 3 or not all(parts):
            raise SettingsError(f"INTAKE_TOKENS entry {entry[:4]}... is not token:role:subject")
        token, role, subject = parts
        if role not in ROLES:
            raise SettingsError(f"INTAKE_TOKENS role {role!r} is not one of {sorted(ROLES)}")
        tokens[token] = Token(role, subject)
    return tokens


def parse_sia_keys(value: str) -> dict[str, bytes]:
    """`account:hexkey,...` into AES keys (16, 24 or 32 bytes); raise on a bad entry."""
    keys: dict[str, bytes] = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        account, _, hexkey = entry.partition(":")
        try:
            key = bytes.fromhex(hexkey)
        except ValueError as exc:
            raise SettingsError(f"INTAKE_SIA_KEYS key for {account} is not hex") from exc
        if not account or len(key) not in (16, 24, 32):
            raise SettingsError(f"INTAKE_SIA_KEYS entry for {account!r} needs 32, 48 or 64 hex digits")
        keys[account] = key
    return keys


def _bounded(env: Mapping[str, str], name: str, default: int, low: int, high: int, what: str) -> int:
    """The whole number in `name` (`default` when unset or empty), within low-high."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not {what}") from exc
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r} is out of range ({low}-{high})")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    return _bounded(env, name, default, 0, 65535, "a port number")


def _role(value: str) -> str:
    if value not in PROCESS_ROLES:
        raise SettingsError(f"INTAKE_ROLE={value!r} is not one of {sorted(PROCESS_ROLES)}")
    return value


WORKER_NICE = 10
"""The worker role's default niceness: on a shared host, intake goes first (README, Operations)."""


def _nice(env: Mapping[str, str], role: str) -> int:
    default = WORKER_NICE if role == "worker" else 0
    return _bounded(env, "INTAKE_NICE", default, 0, 19, "a whole number")


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from the environment (or a given mapping)."""
    env = os.environ if env is None else env
    role = _role(env.get("INTAKE_ROLE") or "all")
    return Settings(
        database_url=env.get("INTAKE_DATABASE_URL") or None,
        redis_url=env.get("INTAKE_REDIS_URL") or None,
        data_dir=Path(env.get("INTAKE_DATA_DIR") or ".intake"),
        http_host=env.get("INTAKE_HTTP_HOST") or "127.0.0.1",
        http_port=_port(env, "INTAKE_HTTP_PORT", 8080),
        sia_port=_port(env, "INTAKE_SIA_PORT", 7100),
        sia_keys=parse_sia_keys(env.get("INTAKE_SIA_KEYS", "")),
        ami_url=env.get("INTAKE_AMI_URL") or None,
        twilio_auth_token=env.get("INTAKE_TWILIO_AUTH_TOKEN") or None,
        public_url=(env.get("INTAKE_PUBLIC_URL") or "").rstrip("/") or None,
        wechat_token=env.get("INTAKE_WECHAT_TOKEN") or None,
        wechat_aes_key=env.get("INTAKE_WECHAT_AES_KEY") or None,
        wechat_appid=env.get("INTAKE_WECHAT_APPID") or None,
        tokens=parse_tokens(env.get("INTAKE_TOKENS", "")),
        redis_prefix=env.get("INTAKE_REDIS_PREFIX") or "intake:",
        role=role,
        nice=_nice(env, role),
        log_format=env.get("INTAKE_LOG_FORMAT") or "json",
        log_level=env.get("INTAKE_LOG_LEVEL") or "info",
        extra={k: v for k, v in env.items() if k.startswith("INTAKE_")},
    )
