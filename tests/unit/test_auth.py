"""Bearer tokens, roles and who sees personal data (gateway/auth.py), without a server."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.auth import (
    PRINCIPAL,
    Forbidden,
    Principal,
    TokenTable,
    Unauthorized,
    make_middleware,
    principal,
    require,
    require_channel,
    token_of,
)
from gateway.privacy import FULL_PERSONAL_DATA, sees_personal_data
from gateway.settings import Token

TOKENS = {"t-unit": Token("unit", "U001"), "t-admin": Token("admin", "root"), "t-agent": Token("agent", "A1")}


def request(authorization: str | None = None) -> web.Request:
    return make_mocked_request("GET", "/", headers={"Authorization": authorization} if authorization else {})


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER  abc ", "abc"), ("Bearer", None),
    ("Bearer   ", None), ("Basic abc", None), ("abc", None), (None, None), ("Token abc", None),
])
def test_the_bearer_token_of_a_request(header: str | None, token: str | None) -> None:
    assert token_of(request(header)) == token


def test_resolve_knows_only_configured_tokens() -> None:
    assert TokenTable(TOKENS).resolve("t-unit") == Principal("unit", "U001")
    assert TokenTable(TOKENS).resolve("t-nope") is None
    assert TokenTable(TOKENS).resolve(None) is None
    assert Principal("unit", "U001").actor == "unit:U001"


def test_a_token_keeps_its_organisation_and_channel_scope() -> None:
    """Bug: the org a sub-centre's token is scoped to dropped on the way to its principal - the
    sub-centre's dispatcher would see and dispatch the whole city's cases."""
    table = TokenTable({"t-weicheng": Token("dispatcher", "D7", org="weicheng"),
                        "t-sms": Token("channel", "gw", scope=frozenset({"twilio"}))})
    assert table.resolve("t-weicheng") == Principal("dispatcher", "D7", None, "weicheng")
    assert table.resolve("t-sms") == Principal("channel", "gw", frozenset({"twilio"}), None)


async def test_the_middleware_attaches_the_principal_or_nothing() -> None:
    seen: list[Principal | None] = []

    async def handler(req: web.Request) -> web.StreamResponse:
        seen.append(principal(req))
        return web.Response()

    middleware = make_middleware(TokenTable(TOKENS))
    for header in ("Bearer t-agent", "Bearer t-wrong", None):
        req = request(header)
        await middleware(req, handler)
        assert (PRINCIPAL in req) is (header == "Bearer t-agent")
    assert seen == [Principal("agent", "A1"), None, None]


def _who(role: str, subject: str = "S1") -> web.Request:
    req = request()
    req[PRINCIPAL] = Principal(role, subject)
    return req


def test_require_refuses_anonymous_callers_with_401() -> None:
    with pytest.raises(Unauthorized) as refused:
        require(request(), "agent")
    assert refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"] == "Bearer"
    assert refused.value.content_type == "application/json"
    assert json.loads(refused.value.text or "")["error"]["code"] == "unauthorized"


def test_require_refuses_other_roles_with_403_and_lets_admin_do_anything() -> None:
    assert require(_who("agent"), "agent", "dispatcher") == Principal("agent", "S1")
    assert require(_who("dispatcher"), "agent", "dispatcher").role == "dispatcher"
    assert require(_who("admin"), "auditor") == Principal("admin", "S1")
    for role in ("unit", "channel", "auditor"):
        with pytest.raises(Forbidden) as refused:
            require(_who(role), "agent", "dispatcher")
        assert refused.value.status == 403
        assert refused.value.content_type == "application/json"
        error = json.loads(refused.value.text or "")["error"]
        assert error == {"code": "forbidden", "message": f"role {role} may not do this"}


def test_who_sees_personal_data() -> None:
    assert {"agent", "dispatcher", "auditor", "admin"} == FULL_PERSONAL_DATA
    for role in FULL_PERSONAL_DATA:
        assert sees_personal_data(Principal(role, "X"))
        assert sees_personal_data(Principal(role, "X"), assigned_to="U002")
    unit = Principal("unit", "U001")
    assert sees_personal_data(unit, assigned_to="U001")
    assert not sees_personal_data(unit, assigned_to="U002")
    assert not sees_personal_data(unit, assigned_to=None)
    assert not sees_personal_data(unit)
    assert not sees_personal_data(Principal("channel", "U001"), assigned_to="U001")
    assert not sees_personal_data(None, assigned_to="U001")


TABLE = TokenTable({"s3cret-token-0001": Token("agent", "A001"), "other-token-00002": Token("unit", "U1")})


def test_a_known_token_is_its_principal() -> None:
    assert TABLE.resolve("s3cret-token-0001") == Principal("agent", "A001")
    assert TABLE.resolve("other-token-00002") == Principal("unit", "U1")


@pytest.mark.parametrize("guess", [None, "", "s3cret-token-000", "s3cret-token-00011", "S3CRET-TOKEN-0001",
                                   "s3cret-token-0001 ", "\ud800"])
def test_anything_else_is_nobody(guess: str | None) -> None:
    assert TABLE.resolve(guess) is None


def test_a_channel_token_posts_within_its_scope_and_no_scope_means_every_channel() -> None:
    table = TokenTable({"portal-token-00001": Token("channel", "portal", frozenset({"web"})),
                        "pbx-token-0000001": Token("channel", "pbx", frozenset({"cti", "alarm"})),
                        "any-token-0000001": Token("channel", "old")})
    portal, pbx, old = (table.resolve(t) for t in ("portal-token-00001", "pbx-token-0000001",
                                                     "any-token-0000001"))
    assert portal == Principal("channel", "portal", frozenset({"web"}))
    assert portal is not None and pbx is not None and old is not None
    assert [portal.may_post(c) for c in ("web", "cti", "alarm")] == [True, False, False]
    assert [pbx.may_post(c) for c in ("web", "cti", "alarm")] == [False, True, True]
    assert all(old.may_post(c) for c in ("web", "cti", "alarm"))
    assert Principal("admin", "root").may_post("alarm") and not Principal("agent", "A1").may_post("web")


def test_require_channel_refuses_a_token_outside_its_scope_with_403() -> None:
    req = request()
    req[PRINCIPAL] = Principal("channel", "portal", frozenset({"web"}))
    assert require_channel(req, "web").subject == "portal"
    with pytest.raises(Forbidden) as refused:
        require_channel(req, "alarm")
    error = json.loads(refused.value.text or "")["error"]
    assert error["message"] == "this channel token may not post to alarm"
    with pytest.raises(Forbidden):
        require_channel(_who("agent"), "cti")
    with pytest.raises(Unauthorized):
        require_channel(request(), "cti")
