"""Generated inputs for every channel, on the real app and the real DC-09 listeners.

Each test sends one channel inputs drawn from `tests/fuzz/inputs.py`: signed correctly
(Twilio's own validator, wechatpy's crypto, our DC-09 framing with the device's AES key)
so that they reach the parsers, and unsigned or forged. It then holds the channel to:

- no answer 5xx, and the app (or listener) still serves afterwards;
- every refused input (4xx on a channel's route) leaves exactly one trace: an `InputRejected`
  of that channel or one count in `intake_dropped_inputs_total`; an accepted one none;
- nothing logged as an error meanwhile (a projection or reactor failing on an accepted input).

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
from gateway.rejections import RATE_LIMITED
from gateway.settings import Settings, TwilioSettings, WechatSettings
from gateway.sia_listener import SiaReceiver
from tests.conftest import auth
from tests.fuzz import inputs
from tests.fuzz.fuzzing import bounded, tried

pytestmark = pytest.mark.fuzz

PUBLIC = "https://intake.example.cn"
TWILIO_TOKEN = "twilio-token-for-fuzzing"
WECHAT_TOKEN = "wechat-token"
WECHAT_AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
WECHAT_APPID = "wx1234567890abcdef"
SIA_EXAMPLES = 80
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


def dropped(services: Any, channel: str, *, limited: bool | None = None) -> int:
    """`intake_dropped_inputs_total` of a channel: every reason, or (`limited`) only the
    rejections not recorded for the per-source limit, or (not `limited`) all but those."""
    total = 0.0
    for metric in services.metrics.registry.collect():
        for sample in metric.samples:
            ours = sample.name == "intake_dropped_inputs_total" and sample.labels.get("channel") == channel
            if ours and (limited is None or (sample.labels.get("reason") == RATE_LIMITED) == limited):
                total += sample.value
    return int(total)


@dataclasses.dataclass
class Run:
    """What one channel's run sent and got back."""

    name: str
    statuses: Counter[int] = dataclasses.field(default_factory=Counter)
    errors: list[str] = dataclasses.field(default_factory=list)
    unrouted: int = 0


    def answer(self, response: requests.Response, what: str) -> bool:
        """Note an answer; whether it refused input sent to a channel's route."""
        tried(self.name, f"{response.status_code // 100}xx")
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.errors.append(f"{response.status_code} for {what[:600]}")
        if response.status_code in (404, 405) and _code(response) in ("not_found", "method_not_allowed"):
            self.unrouted += 1  # no route: the URL named no channel
            return False
        return 400 <= response.status_code < 500

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
                    strategy: st.SearchStrategy[Any], send: Send, errors: Callable[[], list[str]]) -> None:
    """Send `examples` drawn inputs. Each refused one (4xx on a channel route) must leave exactly one
    trace, an `InputRejected` of the channel or one count of `intake_dropped_inputs_total`; an accepted
    one none. Then: no 5xx, the app still answers, nothing logged as an error."""
    base = str(client.make_url("")).rstrip("/")
    loop = asyncio.get_running_loop()

    async def traces() -> int:
        return await recorded(services, channel) + dropped(services, channel)

    def go() -> None:
        with requests.Session() as session:
            @bounded(examples)
            @given(strategy)
            def one(value: Any) -> None:
                before = asyncio.run_coroutine_threadsafe(traces(), loop).result()
                response = send(session, base, value)
                left = asyncio.run_coroutine_threadsafe(traces(), loop).result() - before
                refused = run.answer(response, repr(value))
                assert left == int(refused), (
                    f"{response.status_code} {response.text[:200]!r} left {left} traces for {value!r}"[:1500])

            one()

    await asyncio.to_thread(go)
    run.check()
    assert (await client.get("/health")).status == 200
    assert not errors(), "\n".join(errors()[:20])  # e.g. a projection failing on an accepted input
    assert len(run.statuses) > 1, f"{run.name}: every input got {dict(run.statuses)}"


# Twilio ----------------------------------------------------------------------------------------

_SID = st.integers(0, 10**9).map(lambda n: f"{n:034x}")
SMS_VALID = {"MessageSid": _SID.map(lambda h: "SM" + h),
             "From": st.sampled_from(["+8613912345678", "13912345678"]),
             "To": st.just("+8695598"), "Body": st.sampled_from(["停电了", "我家停电了 13912345678", ""])}
SMS_WRONG = {"MessageSid": ["SMx!", "SM-1", ""], "From": ["", "+44 20 7946 0958", "anonymous"], "To": [""],
             "Body": ["\x00"]}
VOICE_VALID = {"CallSid": _SID.map(lambda h: "CA" + h),
               "CallStatus": st.sampled_from(["queued", "ringing", "in-progress", "completed", "busy",
                                              "no-answer", "canceled", "failed"]),
               "From": st.sampled_from(["+8613912345678", "13912345678"]), "To": st.just("+8695598"),
               "Direction": st.sampled_from(["inbound", "outbound-api"]),
               "Timestamp": st.just("Mon, 23 Nov 2026 08:00:00 +0000")}
VOICE_WRONG = {"CallSid": ["CA!", ""], "CallStatus": ["exploded", ""], "Direction": ["sideways"],
               "Timestamp": ["Mon, 23 Nov 2026 08:00:00 -0000", "Fri, 31 Dec 9999 23:59:59 -1200",
                             "Mon, 01 Jan 0001 00:00:00 +1400", "Thu, 13 Feb 2026 25:61:61 GMT", "yesterday"]}


def twilio_requests(valid: dict[str, Any], wrong: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    """((what, body), how it is signed): a form, well-formed or not, or bytes of any kind."""
    pairs = st.one_of(inputs.well_formed(valid, wrong, text=True).map(lambda d: list(d.items())),
                      inputs.form_pairs({k: [] for k in valid}))
    form = pairs.map(lambda p: ("form", inputs.form_body(p)))
    raw = inputs.raw_bodies(b"MessageSid=SM1&From=%FF", b"From=%ED%A0%80&Body=x", b"a=1&&=&b").map(
        lambda body: ("raw", body))
    signing = st.sampled_from(["valid", "valid", "valid", "none", "garbage", "非ascii签名"])
    return st.tuples(st.one_of(form, form, raw), signing)


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


@pytest.mark.parametrize(("path", "valid", "wrong"),
                         [("/channels/twilio/sms", SMS_VALID, SMS_WRONG),
                          ("/channels/twilio/voice-status", VOICE_VALID, VOICE_WRONG)],
                         ids=["sms", "voice"])
async def test_twilio_webhooks(client: Any, services: Any, logged_errors: Any, path: str,
                               valid: dict[str, Any], wrong: dict[str, list[str]]) -> None:
    run = Run(f"twilio {path.rsplit('/', 1)[1]}")
    await fuzz_http(client, services, run, "twilio", 100, twilio_requests(valid, wrong), twilio_sender(path),
                    logged_errors)
    assert run.statuses[200] and run.statuses[403] and run.statuses[400]


# CTI and alarm over HTTP (bearer channel tokens) ------------------------------------------------------

_ID = st.integers(0, 10**9).map(str)
_AT = st.sampled_from(["2026-11-23T08:00:00Z", "2026-11-23T16:00:00+08:00"])
CTI_VALID = {"event_id": _ID, "type": st.sampled_from(["offered", "answered", "abandoned", "ended"]),
             "call_id": _ID.map(lambda n: f"c{n}"),
             "caller": st.sampled_from(["13912345678", "+8613912345678"]),
             "queue": st.sampled_from(["95598", "12345"]), "agent": st.sampled_from(["A001", "A002"]),
             "at": _AT}
CTI_WRONG = {"event_id": ["", "e" * 300, 7], "type": ["ringing", ""], "call_id": ["c 1", "c1;DROP", ""],
             "caller": ["", "anonymous", "+44 20 7946 0958"], "queue": [""], "agent": [7, ""],
             "at": ["2026-11-23T08:00:00", "yesterday", *inputs.EXTREME_TIMES]}
ALARM_VALID = {"event_id": _ID, "account": st.sampled_from(["E0001", "5555"]),
               "code": st.sampled_from(["MA", "101", "E101", "R101"]), "zone": st.sampled_from(["1", "001"]),
               "lat": st.just(34.3754), "lon": st.just(108.6605),
               "crs": st.sampled_from(["wgs84", "gcj02", "bd09"]), "at": _AT}
ALARM_WRONG = {"event_id": [""], "account": ["bad account!", ""], "code": ["ZZ", 101, ""], "zone": [1, ""],
               "lat": [91.0, -0.0, 1e308, "34.3"], "lon": [181.0, 1e-308], "crs": ["mars"],
               "at": ["2026-11-23T08:00:00", "yesterday", *inputs.EXTREME_TIMES]}


def bearer_requests(valid: dict[str, Any], wrong: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    """(body, bearer token): a JSON event, well-formed or not, or bytes of any kind."""
    body = st.one_of(inputs.well_formed(valid, wrong).map(inputs.json_text),
                     inputs.well_formed(valid, wrong).map(inputs.json_text),
                     inputs.json_objects({k: [] for k in valid}).map(inputs.json_text),
                     inputs.raw_bodies())
    return st.tuples(body, st.sampled_from(BEARERS))


def bearer_sender(path: str) -> Send:
    def send(session: requests.Session, base: str, value: Any) -> requests.Response:
        body, token = value
        headers = {"Content-Type": "application/json", **(auth(token) if token else {})}
        return session.post(base + path, data=body, headers=headers, timeout=10)

    return send


@pytest.mark.parametrize(("path", "channel", "valid", "wrong"),
                         [("/channels/cti/events", "cti", CTI_VALID, CTI_WRONG),
                          ("/channels/alarm/events", "alarm", ALARM_VALID, ALARM_WRONG)],
                         ids=["cti", "alarm-http"])
async def test_bearer_channels(client: Any, services: Any, logged_errors: Any, path: str, channel: str,
                               valid: dict[str, Any], wrong: dict[str, list[Any]]) -> None:
    run = Run(f"{channel} (http)")
    await fuzz_http(client, services, run, channel, 120, bearer_requests(valid, wrong), bearer_sender(path),
                    logged_errors)
    assert run.statuses[201] and run.statuses[400]


# Open311 ----------------------------------------------------------------------------------------

_TEXT = st.sampled_from(["路灯不亮", "停电了，整栋楼都没电", "Bartholomew Fitzgerald-Smythe"])
OPEN311_VALID = {
    "api_key": st.just("t-channel"),
    "service_code": st.sampled_from(["complaint", "report", "todo", "power_fault"]),
    "lat": st.just("34.3754"), "long": st.just("108.6605"), "address_string": st.just("秦都区建设路195号"),
    "description": _TEXT, "first_name": st.just("明"), "last_name": st.just("王"),
    "phone": st.sampled_from(["+44 20 7946 0958", "13912345678"]), "email": st.just("a@example.cn"),
    "attribute[account_number]": st.just("0123456789"), "attribute[fault_type]": st.just("no_power"),
    "attribute[fault_began_at]": st.just("2026-11-23T07:00:00Z"),
    "attribute[fault_scope]": st.just("building"),
    "attribute[service_time]": st.just("2026-11-24T09:00:00+08:00"),
}
OPEN311_WRONG = {
    "api_key": ["t-agent", "nope", ""], "service_code": ["elderly_emergency", "nope", ""],
    "first_name": ["Bartholomew"], "last_name": ["Fitzgerald-Smythe"],
    "lat": ["91", "nan", "1e400", ""], "long": ["181", "-inf"], "address_string": [""],
    "attribute[fault_type]": ["fire"], "attribute[fault_began_at]": ["yesterday", *inputs.EXTREME_TIMES],
    "attribute[service_time]": ["tomorrow", *inputs.EXTREME_TIMES],
}
OPEN311_QUERY = {"service_request_id": ["C1", "C1,C2", ",".join(f"C{i}" for i in range(1000))],
                 "service_code": ["power_fault", "nope"],
                 "start_date": ["2026-11-01T00:00:00Z", "2026-13-01", *inputs.EXTREME_TIMES],
                 "end_date": ["2026-11-30T00:00:00Z", *inputs.EXTREME_TIMES],
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
        query = draw(inputs.form_pairs(OPEN311_QUERY, some=True))
        return "GET", f"/open311/v2/requests.{fmt}", headers, query
    if kind == "get-one":
        return "GET", f"/open311/v2/requests/{draw(inputs.texts('C1', 'C20261123-0001'))}.{fmt}", headers, []
    if kind == "service":
        return "GET", f"/open311/v2/services/{draw(inputs.texts('power_fault', 'todo'))}.{fmt}", headers, []
    pairs = list(draw(inputs.well_formed(OPEN311_VALID, OPEN311_WRONG, text=True)).items())
    if draw(st.booleans()):
        pairs += draw(inputs.form_pairs({k: [] for k in OPEN311_VALID}))
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


async def test_open311(client: Any, services: Any, logged_errors: Any) -> None:
    run = Run("open311 (form, json, xml)")
    await fuzz_http(client, services, run, "web", 120, open311_requests(), open311_send, logged_errors)
    assert run.statuses[201] and run.statuses[400] and run.statuses[403] and run.statuses[200]


# WeChat -----------------------------------------------------------------------------------------

WECHAT_VALID = {
    "ToUserName": st.just("gh_intake"), "FromUserName": st.sampled_from(["oUser_42", "oUser_43"]),
    "CreateTime": st.just("1700000000"), "MsgType": st.sampled_from(["text", "text", "location", "event"]),
    "Content": st.sampled_from(["楼道灯坏了", "13912345678", "我的电话是 +86 139 1234 5678"]),
    "MsgId": st.integers(0, 10**9).map(str),
    "Location_X": st.just("22.9843"), "Location_Y": st.just("113.7518"),
    "Label": st.just("东莞"), "Event": st.sampled_from(["subscribe", "LOCATION", "CLICK"]),
    "Latitude": st.just("22.98"), "Longitude": st.just("113.75"),
}
WECHAT_WRONG = {
    "FromUserName": ["o" * 65, "o user", ""], "CreateTime": ["-1", "x", "9" * 40], "MsgType": ["image", ""],
    "Location_X": ["nan", "91", "1e400"], "Location_Y": ["-inf", "181"], "Latitude": ["x"],
}
_NONCES = itertools.count()


def _element(name: str, value: str) -> str:
    escaped = value.replace("]]>", "]]]]><![CDATA[>")
    return f"<{name}><![CDATA[{escaped}]]></{name}>"


@st.composite
def wechat_requests(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """(method, mode, body, signing): a push in plain or safe mode, or the GET handshake."""
    mode = draw(st.sampled_from(["plain", "plain", "aes", "aes", "aes-garbage", "handshake"]))
    pairs = list(draw(inputs.well_formed(WECHAT_VALID, WECHAT_WRONG, text=True)).items())
    if draw(st.booleans()):
        pairs += draw(inputs.form_pairs({k: [] for k in WECHAT_VALID}))
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
        query["msg_signature"] = query.get("signature", "")
        if signing == "valid":
            try:
                query["msg_signature"] = signature(WECHAT_TOKEN, timestamp, nonce, encrypted)
            except UnicodeEncodeError:  # a lone surrogate: no sender could sign it either
                query["msg_signature"] = "cannot-be-signed"
        payload = f"<xml><ToUserName>gh_intake</ToUserName>{_element('Encrypt', encrypted)}</xml>".encode(
            "utf-8", "surrogatepass")
    url = base + "/channels/wechat?" + inputs.form_body(list(query.items())).decode()
    if method == "GET":
        return session.get(url, timeout=10)
    return session.post(url, data=payload, headers={"Content-Type": "text/xml"}, timeout=10)


async def test_wechat(client: Any, services: Any, logged_errors: Any) -> None:
    run = Run("wechat (plain, aes)")
    await fuzz_http(client, services, run, "wechat", 120, wechat_requests(), wechat_send, logged_errors)
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
async def test_sia_dc09(services: Any, receiver: tuple[int, int], transport: str, logged_errors: Any) -> None:
    from tests.integration.alarm_helpers import register_elder

    await register_elder(services)
    port = receiver[0] if transport == "tcp" else receiver[1]
    name = f"sia dc-09 ({transport})"
    sent = Counter[str]()

    def counted() -> int:  # frames dropped unanswered (an answered one's record may be limited)
        return dropped(services, "alarm", limited=False)

    def go() -> None:
        @bounded(SIA_EXAMPLES)
        @given(inputs.sia_frames(datetime.now(UTC)))
        @example(inputs.frame(b'"SIA-DCS"0001L0#5555[Nri1/MA01][\x00]'))  # found once: always tried
        @example(inputs.frame(b'"SIA-DCS"0002L0#5555[Nri1/MA01^\x00^]'))
        def one(raw: bytes) -> None:
            before = counted()
            got = _tcp(port, raw) if transport == "tcp" else _udp(port, raw, counted)
            frames = raw.count(b"\r") if transport == "tcp" else 1  # the TCP receiver cuts at each CR
            drops = counted() - before
            tried(name, "+".join([a.decode() for a in got] + ["dropped"] * drops) or "nothing")
            sent.update(a.decode() for a in got)
            sent["dropped"] += drops
            assert len(got) + drops == frames, f"{raw!r}: {frames} frames, answers {got}, {drops} counted"

        one()

    before = await recorded(services, "alarm")
    await asyncio.to_thread(go)
    assert sent["ACK"] and sent["NAK"] and sent["DUH"] and sent["dropped"], sent
    # every NAK and DUH is a recorded rejection, or counted past the per-source limit of records
    refused = await recorded(services, "alarm") - before + dropped(services, "alarm", limited=True)
    assert refused == sent["NAK"] + sent["DUH"], sent
    ok = inputs.frame(b'"NULL"0001L0#5555[]')
    assert await asyncio.to_thread(_tcp if transport == "tcp" else _udp_once, port, ok) == [b"ACK"]
    assert not logged_errors(), "\n".join(logged_errors()[:20])


def _udp_once(port: int, raw: bytes) -> list[bytes]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(raw, ("127.0.0.1", port))
        return _answers(sock.recvfrom(4096)[0])
