"""Bearer tokens with roles and channel scopes (INTAKE_TOKENS); who personal data is for: gateway.privacy."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.settings import Token


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a role, a subject (agent id, unit id, channel name...),
    for a `channel` token the channels it may post to (None: every channel), and for a
    token scoped to an organisation node, that node (None: the whole organisation)."""

    role: str
    subject: str
    scope: frozenset[str] | None = None
    org: str | None = None

    @property
    def actor(self) -> str:
        """How events record this caller: `role:subject`."""
        return f"{self.role}:{self.subject}"

    def may_post(self, channel: str) -> bool:
        """Whether this caller may post to `channel` (`web`, `cti`, `alarm`): a channel
        token within its scope, or an admin."""
        if self.role == "admin":
            return True
        return self.role == "channel" and (self.scope is None or channel in self.scope)


PRINCIPAL = web.RequestKey("principal", Principal)
"""Where the authenticated caller of a request is kept (absent when anonymous)."""


class Unauthorized(web.HTTPUnauthorized):
    """No or an unknown bearer token (401)."""


class Forbidden(web.HTTPForbidden):
    """A known token whose role may not do this (403)."""


def token_of(request: web.Request) -> str | None:
    """The bearer token of a request, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenTable:
    """The configured tokens, looked up by their SHA-256.

    A lookup by the token itself would compare the caller's guess with stored
    tokens character by character; the time taken would tell how much of a
    guess was right. Digests of guesses share no prefix an attacker can steer.
    """

    def __init__(self, tokens: Mapping[str, Token]) -> None:
        self._by_digest = {_digest(token): who for token, who in tokens.items()}

    def resolve(self, token: str | None) -> Principal | None:
        """The principal of a token, or None when unknown."""
        if token is None:
            return None
        found = self._by_digest.get(_digest(token))
        return None if found is None else Principal(found.role, found.subject, found.scope, found.org)


TOKENS = web.AppKey("tokens", TokenTable)
"""The app's token table, built once (the middleware and Open311's `api_key` share it)."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_middleware(table: TokenTable) -> Middleware:
    """A middleware that attaches the caller's principal (or None) to each request."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        who = table.resolve(token_of(request))
        if who is not None:
            request[PRINCIPAL] = who
        return await handler(request)

    return authenticate


def principal(request: web.Request) -> Principal | None:
    """The authenticated caller of a request, if any."""
    return request.get(PRINCIPAL)


def require(request: web.Request, *roles: str) -> Principal:
    """The caller, who must have one of `roles` (admin always may); else 401 / 403."""
    who = principal(request)
    if who is None:
        raise Unauthorized(
            text='{"error":{"code":"unauthorized","message":"a valid bearer token is required"}}',
            content_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if who.role != "admin" and who.role not in roles:
        raise Forbidden(
            text=json.dumps({"error": {"code": "forbidden", "message": f"role {who.role} may not do this"}}),
            content_type="application/json",
        )
    return who


def require_channel(request: web.Request, channel: str) -> Principal:
    """The caller of a channel endpoint: a `channel` token whose scope names `channel`
    (or an admin); else 401 / 403."""
    who = require(request, "channel")
    if not who.may_post(channel):
        raise Forbidden(
            text=json.dumps({"error": {"code": "forbidden",
                                       "message": f"this channel token may not post to {channel}"}}),
            content_type="application/json",
        )
    return who
