"""schemathesis over `/openapi.json`: every operation, without a token, with a wrong one and with
each role's, on the real app served on a port. No input may get a 5xx.

Each operation gets `EXAMPLES` inputs drawn from its schema, half valid and half not
(schemathesis' positive and negative modes), each sent with a token chosen among none, an
unknown one and every role's; the inputs are the same on every run (`derandomize`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
import schemathesis.transport.asgi  # imported here, not on the first call: see below
import schemathesis.transport.requests
import schemathesis.transport.wsgi
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from gateway.settings import Settings, TwilioSettings, WechatSettings
from tests.conftest import TOKENS, auth
from tests.fuzz import inputs
from tests.fuzz.fuzzing import bounded, tried

# schemathesis imports its transports on its first call, which here is inside a Hypothesis example,
# deep in the stack: now and then CPython 3.11's parser, rewriting the module for pytest, failed
# with "SystemError: AST constructor recursion depth mismatch" and the test with it (no fault of
# the app's). Imported above, they are loaded before any example runs.

pytestmark = pytest.mark.fuzz

EXAMPLES = 8
"""Inputs per operation (x 44 operations: about 350 requests)."""
TOKEN_CHOICES = [None, "not-a-token", *TOKENS]
HOSTILE = [v for v in [*inputs.NASTY, *inputs.EXTREME_TIMES] if not any("\ud800" <= c <= "\udfff" for c in v)]
"""Values one parameter of a case may get instead (lone surrogates cannot be put in a URL)."""
STREAMING = {"/api/v1/stream"}
"""Server-sent events never end: sent unauthenticated only (answered at once), the rest is in test_sse.py."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every channel configured, so that its operation reaches its parser."""
    return dataclasses.replace(
        settings,
        twilio=TwilioSettings("twilio-token-for-fuzzing"),
        wechat=WechatSettings("wechat-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx0123456789"),
        http=dataclasses.replace(settings.http, public_url="https://intake.example.cn"),
    )


def _operations(spec: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(spec)
    return [result.ok() for result in schema.get_all_operations()]


def _error_code(response: Any) -> str | None:
    """The code of the JSON error envelope `{"error": {"code", "message"}}`, if the answer is one."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) and error.get("message") else None


def _fuzz(operation: Any, base_url: str, statuses: Counter[int]) -> None:
    """Send one operation its inputs; fail on the first 5xx."""
    modes = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
             operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)]
    streaming = operation.path in STREAMING
    tokens = [None, "not-a-token"] if streaming else TOKEN_CHOICES
    params = [(p.location, p.name) for p in operation.iter_parameters() if p.location in ("query", "path")]
    tweak = st.none() if not params else st.one_of(
        st.none(), st.tuples(st.sampled_from(params), st.one_of(st.sampled_from(HOSTILE), st.sampled_from(
            ["\x00", "a\x00b", "9" * 40, *inputs.EXTREME_TIMES]))))  # what a database cannot take, often

    @bounded(EXAMPLES)
    @given(case=st.one_of(modes), token=st.sampled_from(tokens), tweak=tweak)
    def send(case: Any, token: str | None, tweak: tuple[tuple[str, str], str] | None) -> None:
        if tweak is not None:  # one parameter of a drawn case made hostile
            (location, name), value = tweak
            if location == "query":
                case.query = {**(case.query or {}), name: value}
            else:
                case.path_parameters = {**(case.path_parameters or {}), name: value}
        headers = {} if token is None else auth(token)
        with requests.Session() as session:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=10)
        statuses[response.status_code] += 1
        tried("http api (schemathesis)", f"{response.status_code // 100}xx")
        if 400 <= response.status_code < 500 and not operation.path.startswith("/open311/"):
            assert _error_code(response), (  # Open311 answers its own error array
                f"{operation.method.upper()} {operation.path} -> {response.status_code} without the JSON "
                f"error envelope: {response.text[:300]}\n{case.as_curl_command(headers=headers)}")
        assert response.status_code < 500, (
            f"{operation.method.upper()} {operation.path} -> {response.status_code} {response.text[:300]}\n"
            f"token={token!r}\n{case.as_curl_command(headers=headers)}")

    send()


async def test_no_operation_answers_5xx_to_any_input_with_or_without_a_token(
    client: Any, logged_errors: Any
) -> None:
    spec = await (await client.get("/openapi.json")).json()
    operations = _operations(spec)
    assert len(operations) >= 40
    base_url = str(client.make_url("")).rstrip("/")
    statuses: Counter[int] = Counter()
    failures = []
    for operation in operations:
        try:
            await asyncio.to_thread(_fuzz, operation, base_url, statuses)
        except AssertionError as exc:  # every operation still runs: one report names them all
            failures.append(str(exc).split("\nFalsifying")[0])
    assert not failures, "\n\n".join(failures)
    assert (await client.get("/health")).status == 200  # still serving
    assert not logged_errors(), "\n".join(logged_errors()[:20])  # e.g. a projection failing on a case
    # the run reached past authentication and validation, not only their refusals
    assert statuses[401] and statuses[403] and statuses[400] and statuses[200]
