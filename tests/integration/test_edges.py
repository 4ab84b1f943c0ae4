"""Answers at the edges: whatever a client sends, a JSON error of the right status, never a 500."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any
from xml.etree import ElementTree

import pytest

from gateway.http import MAX_BODY
from tests.conftest import auth


async def test_unknown_path_is_404_json(client: Any) -> None:
    response = await client.get("/no/such/path")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_wrong_method_is_405_json_with_allow(client: Any) -> None:
    response = await client.delete("/health")
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


async def test_a_defect_in_a_view_is_a_json_500_that_is_logged(
    client: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """An error no view expects (a bug) was aiohttp's plain-text "500 Internal Server Error"
    page: a client reading the JSON envelope choked on it, and the log said nothing of the path."""
    from gateway.views import cases

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cases, "load_case", broken)
    response = await client.get("/api/v1/cases/C1", headers=auth("t-dispatcher"))
    assert response.status == 500
    assert (await response.json())["error"]["code"] == "internal_error"
    assert "a bug" not in await response.text()  # no detail of the server's insides
    out, err = capfd.readouterr()
    assert "unhandled_error" in out + err and "/api/v1/cases/C1" in out + err


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"event_id": "e1", "type": "ringing", "call_id": "c1", "caller": "\\ud800x\\udfff"}', "bad_text"),
        ('{"event_id": "e1", "type": "ringing", "call_id": "c1", "caller": "139\\u0000"}', "bad_text"),
        ('{"event_id": "e1", "type": "ringing", "call_id": "c1", "n": ' + "9" * 5000 + "}", "bad_json"),
        ('{"event_id": "e1", "type": "ringing", "call_id": "c1", "n": ' + "9" * 40 + "}", "bad_number"),
        ('{"event_id": "e1", "type": "ringing", "call_id": "c1", "n": NaN}', "bad_json"),
        ('{"\\ud800": 1}', "bad_text"),
        ("[" * 5000 + "]" * 5000, "bad_json"),
    ],
    ids=["lone-surrogate", "nul", "5000-digits", "huge-int", "nan", "surrogate-key", "deep"],
)
async def test_cti_input_the_database_cannot_hold_is_400_and_recorded(
    client: Any, services: Any, body: str, code: str
) -> None:
    response = await client.post("/channels/cti/events", data=body.encode(),
                                 headers={**auth("t-channel"), "Content-Type": "application/json"})
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]["code"] == code
    async with services.pool.acquire() as conn:
        rows = await conn.fetch("SELECT data FROM events WHERE type = 'InputRejected'")
    assert [r["data"]["code"] for r in rows] == [code]


async def test_api_json_body_with_lone_surrogate_is_400(client: Any) -> None:
    response = await client.post("/api/v1/cases", data=b'{"description": "\\udfff"}',
                                 headers={**auth("t-agent"), "Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_text"


@pytest.mark.parametrize("path", ["/", "/console/app.js", "/api/v1/cases", "/no/such/path", "/health"])
async def test_every_answer_carries_the_security_headers(client: Any, path: str) -> None:
    response = await client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "'unsafe-eval'" not in csp and "script-src 'self' 'unsafe-inline'" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_map_tiles_are_the_only_foreign_image_source() -> None:
    from gateway.app import content_security_policy

    csp = content_security_policy("https://tiles.example.cn/{z}/{x}/{y}.png")
    assert "img-src 'self' data: https://tiles.example.cn;" in csp
    assert "img-src 'self' data:;" in content_security_policy("")


async def test_a_slow_multipart_upload_is_not_answered_as_a_database_outage(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A portal posting a photo over a slow mobile link: the deadline starts once the body is in,
    multipart or not (a multipart body read within the deadline was answered 503 store_unavailable
    while the database was fine, and the citizen's retries all met the same fate)."""
    monkeypatch.setattr("gateway.app.WRITE_DEADLINE", 0.3)
    boundary = "SlowPhoto"
    parts = [("api_key", "t-web"), ("service_code", "complaint"), ("description", "路灯不亮"),
             ("address_string", "秦都区人民路1号")]
    head = f"--{boundary}\r\nContent-Disposition: form-data; name="
    body = "".join(f'{head}"{k}"\r\n\r\n{v}\r\n' for k, v in parts)
    body += f'{head}"media"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    photo = b"\xff\xd8" + b"\x00" * 2048 + b"\xff\xd9"

    async def slowly() -> AsyncIterator[bytes]:
        yield body.encode()
        await asyncio.sleep(0.5)  # longer than the deadline
        yield photo + f"\r\n--{boundary}--\r\n".encode()

    response = await client.post("/open311/v2/requests.json", data=slowly(),
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status == 201, await response.text()
    assert (await response.json())[0]["service_notice"] == "request accepted"


@pytest.mark.parametrize("path", ["/channels/cti/events", "/open311/v2/requests.json", "/channels/twilio/sms",
                                  "/api/v1/cases", "/no/such/path"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_in_its_content_encoding_is_400_json(
    client: Any, services: Any, path: str, encoding: str
) -> None:
    """aiohttp's decoder fails inside `request.read()` (`RequestPayloadError`): it was a 500."""
    response = await client.post(path, data=b'{"event_id": "not compressed"}', headers={
        **auth("t-channel"), "Content-Type": "application/json", "Content-Encoding": encoding})
    assert response.status == 400
    body = await response.json()
    if path.startswith("/open311/"):  # GeoReport v2's error array on its paths
        assert body == [{"code": 400, "description": "the body is not in its Content-Encoding"}]
    else:
        assert body["error"]["code"] == "bad_encoding"


async def test_every_error_of_an_open311_endpoint_is_in_georeport_form(client: Any) -> None:
    """An Open311 client reads one form of error from every answer of its endpoints: the gateway's
    own refusals too (here a NUL in the URL, refused before any view, and a body over the limit), in
    XML or JSON as the path asks, not the JSON envelope of the other APIs (a GeoReport client given
    `{"error": ...}` for `.xml` cannot read it). A path naming no endpoint keeps the gateway's 404."""
    xml = await client.get("/open311/v2/requests/C%00.xml")
    assert (xml.status, xml.content_type) == (400, "text/xml")
    root = ElementTree.fromstring(await xml.read())
    assert (root.tag, root.findtext("error/code")) == ("errors", "400")
    big = await client.post("/open311/v2/requests.json", data=io.BytesIO(b"x" * (MAX_BODY + 1)),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert big.status == 413 and [e["code"] for e in await big.json()] == [413]
    nothing = await client.get("/open311/v2/nothing.xml")
    assert (await nothing.json())["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/a%5Cb", "/citizen/static/nope.css"])
async def test_a_missing_static_file_is_404_json(client: Any, path: str) -> None:
    """aiohttp's static files answered a missing one with an empty `application/octet-stream` 404."""
    response = await client.get(path)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    assert (await client.get("/console/api.js")).status == 200
