"""Generated inputs for every channel, on the real app and the real DC-09 listeners.

Each test sends one channel inputs drawn from `tests/fuzz/inputs.py`: signed correctly
(Twilio's own validator, wechatpy's crypto, our DC-09 framing with the device's AES key)
so that they reach the parsers, and unsigned or forged. It then holds the channel to:

- no answer 5xx, and the app (or listener) still serves afterwards;
- every refused input recorded as an `InputRejected` of that channel, or counted in
  `intake_dropped_inputs_total`: refused = recorded + dropped, exactly.

The inputs are the same on every run (`derandomize`); `bounded(N)` caps each run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from hypothesis import example, given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from wechatpy.crypto import WeChatCrypto

from channels.wechat_crypto import signature
from gateway.settings import Settings, TwilioSettings, WechatSettings
from gateway.sia_listener import SiaReceiver
from tests.conftest import auth
from tests.fuzz import inputs
from tests.fuzz.fuzzing import TRIED, bounded

pytestmark = pytest.mark.fuzz

PUBLIC = "https://intake.example.cn"
TWILIO_TOKEN = "twilio-token-for-fuzzing"
WECHAT_TOKEN = "wechat-token"
WECHAT_AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
WECHAT_APPID = "wx1234567890abcdef"
SIA_EXAMPLES = 100
BEARERS = ["t-channel", "t-channel", "t-channel", "t-admin", "t-agent", "not-a-token", None]
"""Tokens a bearer channel's inputs carry: mostly the channel's, so that they reach its parser."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every channel configured; the elder's device account has an AES key."""
    return dataclasses.replace(
        settings,
        twilio=TwilioSettings(TWILIO_TOKEN),
        wechat=WechatSettings(WECHAT_TOKEN, WECHAT_AES, WECHAT_APPID),
        http=dataclasses.replace(settings.http, public_url=PUBLIC),
        sia=dataclasses.replace(settings.sia, keys={inputs.KEYED_ACCOUNT: inputs.SIA_KEY}),
    )


# What the app did with the inputs -----------------------------------------------------------

async def recorded(services: Any, channel: str) -> int:
    """`InputRejected` events of a channel."""
    async with services.pool.acquire() as conn:
        return int(await conn.fetchval(
            "SELECT count(*) FROM events WHERE type = 'InputRejected' AND data->>'channel' = $1", channel))


def dropped(services: Any, channel: str) -> int:
    """`intake_dropped_inputs_total` of a channel, every reason."""
    total = 0.0
    for metric in services.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "intake_dropped_inputs_total" and sample.labels.get("channel") == channel:
                total += sample.value
    return int(total)


@dataclasses.dataclass
class Run:
    """What one channel's run sent and got back."""

    name: str
    statuses: Counter[int] = dataclasses.field(default_factory=Counter)
    errors: list[str] = dataclasses.field(default_factory=list)
    unrouted: int = 0

    def answer(self, response: requests.Response, what: str) -> None:
        TRIED[self.name] += 1
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.errors.append(f"{response.status_code} for {what[:600]}")
        elif response.status_code in (404, 405) and _code(response) in ("not_found", "method_not_allowed"):
            self.unrouted += 1  # no route: the URL named no channel

    @property
    def refused(self) -> int:
        """Answers 4xx to requests that reached a channel's route."""
        return sum(n for status, n in self.statuses.items() if 400 <= status < 500) - self.unrouted

    def check(self) -> None:
        assert not self.errors, f"{self.name}: {len(self.errors)} answers 5xx, first:\n" + self.errors[0]


def _code(response: requests.Response) -> str | None:
    """The code of our JSON error envelope, if the answer is one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


Send = Callable[[requests.Session, str, Any], requests.Response]


async def fuzz_http(client: Any, services: Any, run: Run, channel: str, examples: int,
                    strategy: st.SearchStrategy[Any], send: Send) -> None:
    """Send `examples` drawn inputs; then no 5xx, and refused = recorded + dropped."""
    base = str(client.make_url("")).rstrip("/")
    before = await recorded(services, channel) + dropped(services, channel)

    def go() -> None:
        with requests.Session() as session:
            @bounded(examples)
            @given(strategy)
            def one(value: Any) -> None:
                run.answer(send(session, base, value), repr(value))

            one()

    await asyncio.to_thread(go)
    run.check()
    assert (await client.get("/health")).status == 200
    after = await recorded(services, channel) + dropped(services, channel)
    assert after - before == run.refused, (
        f"{run.name}: {run.refused} refused, {after - before} recorded or counted ({dict(run.statuses)})")
    assert len(run.statuses) > 1, f"{run.name}: every input got {dict(run.statuses)}"


# Twilio ----------------------------------------------------------------------------------------

SMS_FIELDS = {"MessageSid": ["SM0123456789abcdef0123456789abcdef", "SMx", "SM-1"],
              "From": ["+8613912345678", "13912345678", "+44 20 7946 0958"], "To": ["+8695598"],
              "Body": ["停电了", "我家停电了 13912345678"], "AccountSid": ["AC123"], "NumMedia": ["0", "-1"]}
VOICE_FIELDS = {"CallSid": ["CA0123456789abcdef0123456789abcdef", "CA!"],
                "CallStatus": ["queued", "ringing", "in-progress", "completed", "busy", "no-answer",
                               "canceled", "failed", "exploded"],
                "From": ["+8613912345678", "13912345678"], "To": ["+8695598"],
                "Direction": ["inbound", "outbound-api", "sideways"],
                "Timestamp": ["Mon, 23 Nov 2026 08:00:00 +0000"], "RecordingSid": ["RE1"]}


def twilio_requests(fields: dict[str, list[str]]) -> st.SearchStrategy[tuple[tuple[str, bytes], str]]:
    """((what, body), how it is signed): a form with every field or some, or bytes of any kind."""
    complete = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in fields.items()}).map(
        lambda d: list(d.items()))
    pairs = st.one_of(complete, inputs.form_pairs(fields),
                      st.builds(lambda a, b: [*a, *b], complete, inputs.form_pairs(fields)))
    form = pairs.map(lambda p: ("form", inputs.form_body(p)))
    raw = inputs.raw_bodies(b"MessageSid=SM1&From=%FF", b"From=%ED%A0%80&Body=x", b"a=1&&=&b").map(
        lambda body: ("raw", body))
    signing = st.sampled_from(["valid", "valid", "valid", "none", "garbage", "非ascii签名"])
    return st.tuples(st.one_of(form, raw), signing)


def _twilio_signature(url: str, body: bytes, signing: str) -> str | None:
    from urllib.parse import parse_qsl

    if signing == "none":
        return None
    if signing != "valid":
        return signing
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return "cannot-be-signed"
    params: dict[str, list[str]] = {}
    for key, value in pairs:
        params.setdefault(key, []).append(value)

    class Multi(dict[str, list[str]]):
        def getall(self, name: str) -> list[str]:
            return self[name]

    try:
        return str(RequestValidator(TWILIO_TOKEN).compute_signature(url, Multi(params)))
    except UnicodeEncodeError:  # a lone surrogate the sender could not sign either
        return "cannot-be-signed"


def twilio_sender(path: str) -> Send:
    def send(session: requests.Session, base: str, value: Any) -> requests.Response:
        (_, body), signing = value
        headers: dict[str, str | bytes] = {"Content-Type": "application/x-www-form-urlencoded"}
        sig = _twilio_signature(PUBLIC + path, body, signing)
        if sig is not None:
            headers["X-Twilio-Signature"] = sig.encode()  # as bytes: UTF-8 on the wire, as a forger may send
        return session.post(base + path, data=body, headers=headers, timeout=10)

    return send


@pytest.mark.parametrize(("path", "fields"), [("/channels/twilio/sms", SMS_FIELDS),
                                              ("/channels/twilio/voice-status", VOICE_FIELDS)],
                         ids=["sms", "voice"])
async def test_twilio_webhooks(client: Any, services: Any, path: str, fields: dict[str, list[str]]) -> None:
    run = Run(f"twilio {path.rsplit('/', 1)[1]}")
    await fuzz_http(client, services, run, "twilio", 120, twilio_requests(fields), twilio_sender(path))
    assert run.statuses[200] and run.statuses[403] and run.statuses[400]


# CTI and alarm over HTTP (bearer channel tokens) ------------------------------------------------------

CTI_FIELDS: dict[str, list[Any]] = {
    "event_id": ["e1", "e2", "e-" + "x" * 300],
    "type": ["offered", "answered", "abandoned", "ended", "ringing"],
    "call_id": ["c1", "c 1", "c1;DROP"], "caller": ["13912345678", "+44 20 7946 0958", "anonymous"],
    "queue": ["95598", "12345"], "agent": ["A001", 7], "at": ["2026-11-23T08:00:00Z", "2026-11-23T08:00:00"],
}
ALARM_FIELDS: dict[str, list[Any]] = {
    "event_id": ["a1", "a2", ""], "account": ["E0001", "5555", "bad account!"],
    "code": ["MA", "101", "E101", "R101", "ZZ", 101], "zone": ["1", "001", 1],
    "lat": [34.3754, 91.0, -0.0, 1e308, "34.3"], "lon": [108.6605, 181.0, 1e-308],
    "crs": ["wgs84", "gcj02", "bd09", "mars"], "at": ["2026-11-23T08:00:00Z", "2026-11-23T08:00:00"],
}


def bearer_requests(fields: dict[str, list[Any]]) -> st.SearchStrategy[tuple[bytes, str | None]]:
    complete = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in fields.items() if k != "agent"})
    body = st.one_of(
        complete.map(inputs.json_text),
        inputs.json_objects(fields).map(inputs.json_text),
        st.builds(lambda a, b: {**a, **b}, complete, inputs.json_objects(fields)).map(inputs.json_text),
        inputs.raw_bodies(),
    )
    return st.tuples(body, st.sampled_from(BEARERS))


def bearer_sender(path: str) -> Send:
    def send(session: requests.Session, base: str, value: Any) -> requests.Response:
        body, token = value
        headers = {"Content-Type": "application/json", **(auth(token) if token else {})}
        return session.post(base + path, data=body, headers=headers, timeout=10)

    return send


@pytest.mark.parametrize(("path", "channel", "fields"), [("/channels/cti/events", "cti", CTI_FIELDS),
                                                         ("/channels/alarm/events", "alarm", ALARM_FIELDS)],
                         ids=["cti", "alarm-http"])
async def test_bearer_channels(client: Any, services: Any, path: str, channel: str,
                               fields: dict[str, list[Any]]) -> None:
    run = Run(f"{channel} (http)")
    await fuzz_http(client, services, run, channel, 150, bearer_requests(fields), bearer_sender(path))
    assert run.statuses[201] and run.statuses[400]


# Open311 ----------------------------------------------------------------------------------------

OPEN311_FIELDS = {
    "api_key": ["t-channel", "t-agent", "nope", ""],
    "service_code": ["power_fault", "complaint", "elderly_emergency", "todo", "nope"],
    "lat": ["34.3754", "91", "nan", "1e400"], "long": ["108.6605", "181", "-inf"],
    "crs": ["gcj02", "bd09", "x"], "address_string": ["秦都区建设路195号"], "address_id": ["A1"],
    "description": ["停电了"], "first_name": ["Bartholomew"], "last_name": ["Fitzgerald-Smythe"],
    "phone": ["+44 20 7946 0958", "13912345678"], "email": ["a@example.cn"],
    "attribute[account_number]": ["0123456789"], "attribute[fault_type]": ["no_power", "fire"],
    "attribute[fault_began_at]": ["2026-11-23T07:00:00Z", "yesterday"],
    "attribute[fault_scope]": ["building"],
    "attribute[service_time]": ["2026-11-24T09:00:00+08:00", "tomorrow"],
    "media_url": ["https://example.cn/a.jpg"],
}
OPEN311_QUERY = {"service_request_id": ["C1", "C1,C2", ",".join(f"C{i}" for i in range(1000))],
                 "service_code": ["power_fault", "nope"],
                 "start_date": ["2026-11-01T00:00:00Z", "2026-13-01"],
                 "end_date": ["2026-11-30T00:00:00Z", "0001-01-01T00:00:00Z"],
                 "status": ["open", "closed", "x"]}


@st.composite
def open311_requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], Any]:
    """(method, path, headers, body or query) for any Open311 route, in JSON or XML."""
    fmt = draw(st.sampled_from(["json", "xml", "json", "xml", "html"]))
    kind = draw(st.sampled_from(
        ["form", "form", "form", "multipart", "json", "raw", "get", "get-one", "service"]))
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(st.sampled_from(["k1", "k2", "k" * 300]))
    if kind == "get":
        return "GET", f"/open311/v2/requests.{fmt}", headers, draw(inputs.form_pairs(OPEN311_QUERY))
    if kind == "get-one":
        return "GET", f"/open311/v2/requests/{draw(inputs.texts('C1', 'C20261123-0001'))}.{fmt}", headers, []
    if kind == "service":
        return "GET", f"/open311/v2/services/{draw(inputs.texts('power_fault', 'todo'))}.{fmt}", headers, []
    pairs = draw(inputs.form_pairs(OPEN311_FIELDS))
    if draw(st.booleans()):
        pairs = [("api_key", "t-channel"), ("service_code", "complaint"), ("description", "路灯不亮"),
                 ("address_string", "秦都区建设路195号"), *pairs]
    path = f"/open311/v2/requests.{fmt}"
    if kind == "form":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return "POST", path, headers, inputs.form_body(pairs)
    if kind == "multipart":
        parts = [(k, (None, v.encode("utf-8", "surrogatepass"))) for k, v in pairs]
        return "POST", path, headers, {"files": parts}
    if kind == "json":
        headers["Content-Type"] = "application/json"
        return "POST", path, headers, inputs.json_text(dict(pairs))
    headers["Content-Type"] = draw(st.sampled_from([
        "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=x",
        "text/xml"]))
    return "POST", path, headers, draw(inputs.raw_bodies(b"api_key=t-channel&service_code=%FF",
                                                         b"--x\r\nContent-Disposition: form-data\r\n\r\n"))


def open311_send(session: requests.Session, base: str, value: Any) -> requests.Response:
    method, path, headers, payload = value
    url = base + path.replace("?", "%3F").replace("#", "%23")
    if method == "GET":
        query = inputs.form_body(payload).decode()
        return session.get(url + ("?" + query if query else ""), headers=headers, timeout=10)
    if isinstance(payload, dict):
        return session.post(url, headers=headers, timeout=10, **payload)
    return session.post(url, data=payload, headers=headers, timeout=10)


async def test_open311(client: Any, services: Any) -> None:
    run = Run("open311 (form, json, xml)")
    await fuzz_http(client, services, run, "web", 150, open311_requests(), open311_send)
    assert run.statuses[201] and run.statuses[400] and run.statuses[403] and run.statuses[200]


# WeChat -----------------------------------------------------------------------------------------

WECHAT_FIELDS = {
    "ToUserName": ["gh_intake"], "FromUserName": ["oUser_42", "o" * 65, "o user"],
    "CreateTime": ["1700000000", "-1", "x"], "MsgType": ["text", "location", "event", "image", "voice"],
    "Content": ["楼道灯坏了", "13912345678", "我的电话是 +86 139 1234 5678"], "MsgId": ["5001", "5002"],
    "Location_X": ["22.9843", "nan", "91", "1e400"], "Location_Y": ["113.7518", "-inf", "181"],
    "Label": ["东莞"], "Event": ["subscribe", "LOCATION", "CLICK"], "Latitude": ["22.98"],
    "Longitude": ["113.75"], "EventKey": ["k"],
}
_NONCES = itertools.count()


def _element(name: str, value: str) -> str:
    escaped = value.replace("]]>", "]]]]><![CDATA[>")
    return f"<{name}><![CDATA[{escaped}]]></{name}>"


@st.composite
def wechat_requests(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """(method, mode, body, signing): a push in plain or safe mode, or the GET handshake."""
    mode = draw(st.sampled_from(["plain", "plain", "aes", "aes", "aes-garbage", "handshake"]))
    pairs = draw(inputs.form_pairs(WECHAT_FIELDS))
    if draw(st.booleans()):
        pairs = [("ToUserName", "gh_intake"), ("FromUserName", "oUser_42"), ("CreateTime", "1700000000"),
                 ("MsgType", "text"), ("Content", "停电了"), *pairs]
    good = "<xml>" + "".join(_element(k, v) for k, v in pairs if re.fullmatch(r"[A-Za-z_]\w*", k)) + "</xml>"
    body = draw(st.one_of(st.just(good), st.just(good), st.sampled_from([
        "<xml><a>1</a>", "<notxml/>", "<?xml version='1.0' encoding='UTF-16'?><xml/>",
        "<!DOCTYPE x [<!ENTITY a 'b'>]><xml>&a;</xml>", "<xml><Content>&#0;</Content></xml>",
        "<xml>" + "<a>" * 300 + "</a>" * 300 + "</xml>"]), inputs.texts()))
    signing = draw(st.sampled_from(["valid", "valid", "valid", "none", "wrong", "非ascii"]))
    return "GET" if mode == "handshake" else "POST", mode, body, signing


def wechat_send(session: requests.Session, base: str, value: Any) -> requests.Response:
    method, mode, body, signing = value
    timestamp, nonce = str(int(time.time())), f"n{next(_NONCES)}x"
    query = {"timestamp": timestamp, "nonce": nonce}
    if signing == "valid":
        query["signature"] = signature(WECHAT_TOKEN, timestamp, nonce)
    elif signing != "none":
        query["signature"] = signing
    payload = body.encode("utf-8", "surrogatepass")
    if mode == "handshake":
        query["echostr"] = body
    elif mode.startswith("aes"):
        query["encrypt_type"] = "aes"
        if mode == "aes":
            crypto = WeChatCrypto(WECHAT_TOKEN, WECHAT_AES, WECHAT_APPID)
            text = body.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            envelope = crypto.encrypt_message(text, nonce, timestamp)
            encrypted = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", envelope).group(1)  # type: ignore[union-attr]
        else:
            encrypted = body
        query["msg_signature"] = (signature(WECHAT_TOKEN, timestamp, nonce, encrypted)
                                  if signing == "valid" else query.get("signature", ""))
        payload = f"<xml><ToUserName>gh_intake</ToUserName>{_element('Encrypt', encrypted)}</xml>".encode(
            "utf-8", "surrogatepass")
    url = base + "/channels/wechat?" + inputs.form_body(list(query.items())).decode()
    if method == "GET":
        return session.get(url, timeout=10)
    return session.post(url, data=payload, headers={"Content-Type": "text/xml"}, timeout=10)


async def test_wechat(client: Any, services: Any) -> None:
    run = Run("wechat (plain, aes)")
    await fuzz_http(client, services, run, "wechat", 150, wechat_requests(), wechat_send)
    assert run.statuses[200] and run.statuses[400] and run.statuses[403]


# SIA DC-09 over TCP and UDP ---------------------------------------------------------------------

@pytest.fixture
async def receiver(services: Any) -> AsyncIterator[tuple[int, int]]:
    rx = SiaReceiver(services)
    ports = await rx.start("127.0.0.1", 0)
    yield ports
    await rx.close()


def _answers(data: bytes) -> list[bytes]:
    return [m.group(1) for m in re.finditer(rb'"\*?(ACK|NAK|DUH)"', data)]


def _tcp(port: int, raw: bytes) -> list[bytes]:
    """Send one frame on its own connection; every answer until the receiver hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return _answers(data)


def _udp(port: int, raw: bytes, counted: Callable[[], int]) -> list[bytes]:
    """Send one datagram; its answer, or none once the receiver counted it as dropped."""
    before = counted()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.02)
        sock.sendto(raw, ("127.0.0.1", port))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                return _answers(sock.recvfrom(4096)[0])
            except TimeoutError:
                if counted() > before:
                    return []
    raise AssertionError(f"datagram neither answered nor counted: {raw!r}")


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_sia_dc09(services: Any, receiver: tuple[int, int], transport: str) -> None:
    from tests.integration.alarm_helpers import register_elder

    await register_elder(services)
    port = receiver[0] if transport == "tcp" else receiver[1]
    name = f"sia dc-09 ({transport})"
    sent = Counter[str]()

    def counted() -> int:
        return dropped(services, "alarm")

    def go() -> None:
        @bounded(SIA_EXAMPLES)
        @given(inputs.sia_frames(datetime.now(UTC)))
        @example(inputs.frame(b'"SIA-DCS"0001L0#5555[Nri1/MA01][\x00]'))  # found once: always tried
        @example(inputs.frame(b'"SIA-DCS"0002L0#5555[Nri1/MA01^\x00^]'))
        def one(raw: bytes) -> None:
            before = counted()
            got = _tcp(port, raw) if transport == "tcp" else _udp(port, raw, counted)
            TRIED[name] += 1
            frames = raw.count(b"\r") if transport == "tcp" else 1  # the TCP receiver cuts at each CR
            sent.update(a.decode() for a in got)
            sent["dropped"] += counted() - before
            assert len(got) + counted() - before == frames, (
                f"{raw!r}: {frames} frames, answers {got}, {counted() - before} counted")

        one()

    before = await recorded(services, "alarm")
    await asyncio.to_thread(go)
    assert sent["ACK"] and sent["NAK"] and sent["DUH"] and sent["dropped"], sent
    # every NAK and DUH is a recorded rejection; the listener still answers
    assert await recorded(services, "alarm") - before == sent["NAK"] + sent["DUH"], sent
    ok = inputs.frame(b'"NULL"0001L0#5555[]')
    assert await asyncio.to_thread(_tcp if transport == "tcp" else _udp_once, port, ok) == [b"ACK"]


def _udp_once(port: int, raw: bytes) -> list[bytes]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(raw, ("127.0.0.1", port))
        return _answers(sock.recvfrom(4096)[0])
