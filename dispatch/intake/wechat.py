"""WeChat conversations: each follower's pushes, and the rules deciding when they open a case.

Each follower (OpenID) has a conversation stream `wechat-<openid>` holding
every push (`WeChatMessageReceived`, idempotent on `MsgId`, or on
`FromUserName`+`CreateTime`+`Event` for events). What a push does is decided
from the pushes before it, so a WeChat retry decides the same again: a
complaint text waits until the follower has given a phone number, then becomes
a case; a location (WGS84 by the time it is here) goes with the case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from dispatch.cases.events import CallerInfo, Place
from dispatch.cases.registration import RegisterCase, register_case
from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import Command, Event, event, from_recorded, metadata, to_new_event
from dispatch.core.phone import normalise_phone
from dispatch.intake.classify import classify_text
from eventstore import ANY, EventStore

_CATEGORY_KEY = re.compile(r"^category:([a-z_]{1,40})$")
ASK_PHONE = "您好，已收到您的留言。请回复您的手机号码，我们将据此受理并回访。"
WELCOME = "欢迎关注！直接留言描述问题即可，发送位置可帮助我们更快找到您。"


@dataclass(frozen=True, slots=True)
class WeChatPush:
    """One decoded push of a follower; lat/lon are WGS84."""

    to_user: str
    from_user: str
    create_time: str
    msg_type: str
    msg_id: str | None = None
    content: str | None = None
    lat: float | None = None
    lon: float | None = None
    label: str | None = None
    event: str | None = None
    event_key: str | None = None

    @property
    def idempotency_key(self) -> str:
        """`wechat:<MsgId>`, or for events `wechat:<FromUserName>:<CreateTime>:<Event>`."""
        if self.msg_id:
            return f"wechat:{self.msg_id}"
        return f"wechat:{self.from_user}:{self.create_time}:{self.event or self.msg_type}"


@event
@dataclass(frozen=True, slots=True)
class WeChatMessageReceived(Event):
    """A follower's push, with the decrypted XML it came in."""

    push: WeChatPush
    raw: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """What earlier pushes of one follower left behind."""

    phone: str | None = None
    pending_text: str | None = None
    place: Place | None = None
    label: str | None = None
    category: str | None = None


def conversation_stream(openid: str) -> str:
    """The stream of a follower's pushes."""
    return f"wechat-{openid}"


def _phone_in(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return normalise_phone(text.strip())
    except InvalidCommand:
        return None


def step(state: Conversation, push: WeChatPush) -> Conversation:
    """The conversation after one push."""
    if push.lat is not None and push.lon is not None:
        state = replace(state, place=Place(push.lat, push.lon), label=push.label or state.label)
    if push.event == "CLICK" and push.event_key and _CATEGORY_KEY.match(push.event_key):
        return replace(state, category=_CATEGORY_KEY.match(push.event_key).group(1))  # type: ignore[union-attr]
    if push.msg_type != "text":
        return state
    phone = _phone_in(push.content)
    if phone:
        return replace(state, phone=phone, pending_text=None)
    if state.phone:
        return replace(state, pending_text=None)
    return replace(state, pending_text=push.content)


def conversation_of(pushes: Iterable[WeChatPush]) -> Conversation:
    """Fold earlier pushes, oldest first, into the conversation."""
    state = Conversation()
    for push in pushes:
        state = step(state, push)
    return state


def decide(state: Conversation, push: WeChatPush, stream: str) -> tuple[RegisterCase | None, str]:
    """The case a push opens (if any) and the reply when no case is opened."""
    if push.msg_type == "event":
        return None, WELCOME if push.event == "subscribe" else "已收到。直接留言描述问题即可。"
    if push.msg_type == "location":
        return None, f"已收到您的位置{('：' + push.label) if push.label else ''}，请继续描述问题。"
    if push.msg_type != "text":
        return None, "已收到。请用文字描述您的问题。"
    phone = _phone_in(push.content)
    text = state.pending_text if phone else push.content
    phone = phone or state.phone
    if not phone:
        return None, ASK_PHONE
    if not text:
        return None, "已记录您的手机号码，请描述您的问题。"
    cmd = RegisterCase(
        category=state.category or classify_text(text), channel="wechat", description=text[:4000],
        caller=CallerInfo(phone=phone, openid=push.from_user), location=state.place,
        address=state.label, contact_stream=stream, idempotency_key=f"{push.idempotency_key}:case",
        actor=f"wechat:{push.from_user}", raw={"openid": push.from_user, "text": text},
    )
    return cmd, ""


def case_reply(case_id: str) -> str:
    """The reply once a push has opened (or, on a retry, had opened) a case."""
    return f"您的诉求已受理，工单号 {case_id}，我们将尽快处理并回访。"


@dataclass(frozen=True, slots=True)
class ReceiveWeChatPush(Command):
    """Record a follower's push and act on it (the WeChat endpoint's command)."""

    push: WeChatPush
    raw: str


@dataclass(frozen=True, slots=True)
class WeChatAnswer:
    """The text to reply with, and whether the push was a redelivery."""

    reply: str
    duplicate: bool


async def receive_wechat_push(cmd: ReceiveWeChatPush, *, store: EventStore, clock: Clock) -> WeChatAnswer:
    """Record the push (idempotent), decide from the pushes before it, open the case if due."""
    push = cmd.push
    stream = conversation_stream(push.from_user)
    meta = metadata(actor=f"wechat:{push.from_user}", channel="wechat", received_at=clock.now())
    result = await store.append(stream, [to_new_event(WeChatMessageReceived(push, cmd.raw), meta)], ANY,
                                idempotency_key=push.idempotency_key)
    earlier = await store.read_stream(stream, limit=max(result.first_version, 0))
    received = (from_recorded(r) for r in earlier)
    state = conversation_of(e.push for e in received if isinstance(e, WeChatMessageReceived))
    register, text = decide(state, push, stream)
    if register is None:
        return WeChatAnswer(text, result.duplicate)
    registered = await register_case(register, store=store, clock=clock)
    return WeChatAnswer(case_reply(registered.case_id), result.duplicate)


HANDLERS: dict[type, Handler] = {ReceiveWeChatPush: receive_wechat_push}
