"""WeChat conversations: each follower's pushes, and the rules filing them with cases.

Each follower (OpenID) has a conversation stream `wechat-<openid>` holding
every push (`WeChatMessageReceived`, idempotent on `MsgId`, or on
`FromUserName`+`CreateTime`+`Event` for events). The event also says which
case the push went with, decided when it was appended, so a WeChat retry
answers what the first delivery did:

- a text opens a case at once (channel `wechat`, the OpenID as contact), or
  joins the follower's open one (`CaseMessageReceived`); a follower who has
  not given a phone number yet gets a case flagged `awaiting_phone` and a
  reply asking for one;
- a text that is a phone number goes to the open case as `CallerPhoneGiven`
  (clearing the flag) rather than opening another, and is remembered for the
  follower's later cases;
- a location (WGS84 by the time it is here) joins the open case, or goes
  with the next one; a menu `CLICK` with `category:<name>` sets the next
  case's category.

One follower's pushes are filed one at a time: the push is appended with the
conversation's version as seen when deciding, and decided again if another
push of the same follower got in first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from dispatch.cases.events import AWAITING_PHONE, CallerInfo, CallerPhoneGiven, CaseLocated, Place
from dispatch.cases.registration import RegisterCase, new_case_id, register_case
from dispatch.cases.state import CaseState, case_stream, load_case
from dispatch.cases.status import DONE
from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand, NotFound, StaleVersion
from dispatch.core.messages import Command, Event, event, from_recorded, metadata, to_new_event
from dispatch.core.personal import PERSONAL, pseudonym, subject
from dispatch.core.phone import normalise_phone
from dispatch.core.texts import CHINESE, Texts
from dispatch.intake.classify import classify_text, life_priority
from dispatch.intake.contact import InboundContact
from dispatch.intake.sms import CaseMessageReceived
from eventstore import ANY, EventStore, RecordedEvent, WrongExpectedVersion

_CATEGORY_KEY = re.compile(r"^category:([a-z_]{1,40})$")
_MOBILE_IN_TEXT = re.compile(r"(?<![\d+])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
"""A mainland mobile number inside a longer text (`... 139 1234 5678 ...`)."""
MIN_PHONE_DIGITS = 7
"""A text of fewer digits (110, 12345, 95598) is a service number, not one to call the follower back on."""
ASK_PHONE = CHINESE.say("wechat.ask_phone")
WELCOME = CHINESE.say("wechat.welcome")
MEDIA = frozenset({"image", "voice", "video", "shortvideo", "link", "file"})
"""Message types that join the follower's open case as they are (a voice message with WeChat's
recognition of it as its text); they open none."""
FILING_ATTEMPTS = 5
"""How often a push is decided again when other pushes of its follower keep getting in first."""


@dataclass(frozen=True, slots=True)
class WeChatPush:
    """One decoded push of a follower; lat/lon are WGS84."""

    to_user: str
    from_user: str = field(metadata=PERSONAL)
    create_time: str
    msg_type: str
    msg_id: str | None = None
    content: str | None = field(default=None, metadata=PERSONAL)
    lat: float | None = field(default=None, metadata=PERSONAL)
    lon: float | None = field(default=None, metadata=PERSONAL)
    label: str | None = field(default=None, metadata=PERSONAL)
    event: str | None = None
    event_key: str | None = None
    district: str | None = None
    """The adcode of the loaded district the point lies in (added after the first release)."""
    district_name: str | None = None
    media_url: str | None = field(default=None, metadata=PERSONAL)
    """An image's `PicUrl` or a link's `Url` (added after the first release, as `media_id`)."""
    media_id: str | None = None

    @property
    def idempotency_key(self) -> str:
        """`wechat:<MsgId>`, or for events `wechat:<pseudonym of FromUserName>:<CreateTime>:<Event>`."""
        if self.msg_id:
            return f"wechat:{self.msg_id}"
        return f"wechat:{pseudonym(self.from_user)}:{self.create_time}:{self.event or self.msg_type}"

    @property
    def place(self) -> Place | None:
        """Where the push says the follower is (a location message or a `LOCATION` event)."""
        if self.lat is None or self.lon is None:
            return None
        return Place(self.lat, self.lon, self.district, self.district_name)

    def contact(self, received_at: datetime, phone: str | None) -> InboundContact:
        """The push as the contact every channel parses into."""
        return InboundContact(
            channel="wechat", kind=f"wechat_{self.msg_type}", idempotency_key=self.idempotency_key,
            caller=CallerInfo(phone=phone, openid=self.from_user),
            occurred_at=datetime.fromtimestamp(int(self.create_time), UTC), received_at=received_at,
            text=self.content, location=self.place, extra={"label": self.label} if self.label else {},
        )


@event
@dataclass(frozen=True, slots=True)
class WeChatMessageReceived(Event):
    """A follower's push, with the decrypted XML it came in and the case it went with.

    `case_id` is the case the push joined or (`opened`) opened; None when it
    went with no case (events, a phone number or a location while no case is open).
    """

    push: WeChatPush
    raw: str = field(metadata=PERSONAL)
    case_id: str | None = None
    opened: bool = False

    def data_subject(self) -> str | None:
        """The follower's."""
        return subject("openid", self.push.from_user)


@dataclass(frozen=True, slots=True)
class Conversation:
    """What earlier pushes of one follower left behind.

    `case_id` is the last case they went with; `opening` the registration of
    the last case a push opened, so a push joining it can register it first
    should the opening push's registration not have happened yet.
    """

    phone: str | None = None
    place: Place | None = None
    label: str | None = None
    category: str | None = None
    case_id: str | None = None
    opening: RegisterCase | None = None


def conversation_stream(openid: str) -> str:
    """The stream of a follower's pushes."""
    return f"wechat-{pseudonym(openid)}"


def phone_in(text: str | None) -> str | None:
    """The phone number a text consists of, normalised; None when it is anything else."""
    if not text or sum(c.isdigit() for c in text) < MIN_PHONE_DIGITS:
        return None
    try:
        return normalise_phone(text.strip())
    except InvalidCommand:
        return None


def mentioned_phone(text: str | None) -> str | None:
    """The phone number a text consists of, or a mobile number mentioned in it."""
    found = _MOBILE_IN_TEXT.search(text or "")
    return phone_in(text) or (phone_in(found.group(0)) if found else None)


def step(state: Conversation, received: WeChatMessageReceived) -> Conversation:
    """The conversation after one filed push."""
    push = received.push
    if received.opened:  # the new case took the remembered place and category
        state = replace(state, place=None, label=None, category=None,
                        opening=registration(state, received))
    if received.case_id is not None:
        state = replace(state, case_id=received.case_id)
    if push.place is not None and received.case_id is None:
        state = replace(state, place=push.place, label=push.label)
    key = _CATEGORY_KEY.match(push.event_key or "") if push.event == "CLICK" else None
    if key is not None:
        return replace(state, category=key.group(1))
    phone = mentioned_phone(push.content) if push.msg_type == "text" else None
    return replace(state, phone=phone) if phone else state


def conversation_of(received: Iterable[WeChatMessageReceived]) -> Conversation:
    """Fold earlier pushes, oldest first, into the conversation."""
    state = Conversation()
    for evt in received:
        state = step(state, evt)
    return state


def file_push(state: Conversation, push: WeChatPush, raw: str, *, case_open: bool,
              new_case: str) -> WeChatMessageReceived:
    """Decide which case a push goes with (pure): `case_open` says whether `state.case_id` is still open."""
    current = state.case_id if case_open else None
    if push.msg_type == "text" and push.content:
        if current is None and not phone_in(push.content):
            return WeChatMessageReceived(push, raw, new_case, opened=True)
        return WeChatMessageReceived(push, raw, current)
    if push.msg_type == "location" or push.msg_type in MEDIA:
        return WeChatMessageReceived(push, raw, current)
    return WeChatMessageReceived(push, raw)


def registration(state: Conversation, received: WeChatMessageReceived) -> RegisterCase:
    """The case a text opens: flagged `awaiting_phone` until the follower gives a number."""
    push, text = received.push, received.push.content or ""
    phone = mentioned_phone(text) or state.phone
    return RegisterCase(
        category=state.category or classify_text(text), priority=life_priority(text), channel="wechat",
        description=text[:4000],
        caller=CallerInfo(phone=phone, openid=push.from_user), location=state.place,
        address=state.label, flags=() if phone else (AWAITING_PHONE,),
        contact_stream=conversation_stream(push.from_user),
        idempotency_key=f"{push.idempotency_key}:case", case_id=received.case_id,
        actor=f"wechat:{pseudonym(push.from_user)}", raw={"openid": push.from_user, "text": text},
    )


def case_events(state: Conversation, received: WeChatMessageReceived, at: datetime) -> list[Event]:
    """What a push joining an open case adds to it: the message, and the phone number it gives."""
    push, case_id = received.push, received.case_id
    assert case_id is not None
    phone = mentioned_phone(push.content) if push.msg_type == "text" else None
    by = f"wechat:{pseudonym(push.from_user)}"
    given = CallerPhoneGiven(case_id, phone, "wechat", at, by) if phone else None
    if given is not None and phone_in(push.content):
        return [given]  # the whole text is the number
    text = push.content or push.label or push.media_url or ""
    message = CaseMessageReceived(case_id, "wechat", phone or state.phone, text,
                                  push.contact(at, phone or state.phone))
    return [message] if given is None or phone == state.phone else [message, given]


def case_located(case: CaseState, received: WeChatMessageReceived, at: datetime) -> CaseLocated | None:
    """The place a location push gives the case it joins: when the case has none, or only the
    gazetteer's guess from its text; a place an agent set stands."""
    place, push = received.push.place, received.push
    if place is None or push.msg_type != "location" or case.location_source not in (None, "gazetteer"):
        return None
    return CaseLocated(case.case_id, place, "given", at, by=f"wechat:{pseudonym(push.from_user)}")


def reply(state: Conversation, received: WeChatMessageReceived, texts: Texts = CHINESE) -> str:
    """The passive text reply to a push, naming its case when it has one."""
    push, case_id = received.push, received.case_id
    awaiting = "" if state.phone or mentioned_phone(push.content) else texts.say("wechat.ask_phone")
    if push.msg_type == "event":
        return texts.say("wechat.welcome" if push.event == "subscribe" else "wechat.event")
    if push.msg_type == "location":
        where = (texts.say("wechat.location_named", label=push.label) if push.label
                 else texts.say("wechat.location"))
        if case_id:
            return texts.say("wechat.location_case", where=where, case_id=case_id)
        return texts.say("wechat.location_alone", where=where)
    if push.msg_type in MEDIA and case_id:
        kind = texts.say(f"wechat.media.{push.msg_type}")
        return texts.say("wechat.media_case", kind=kind, case_id=case_id)
    if push.msg_type != "text" or not push.content:
        return texts.say("wechat.not_text")
    if phone_in(push.content):
        if case_id:
            return texts.say("wechat.phone_case", case_id=case_id)
        return texts.say("wechat.phone_alone")
    if received.opened:
        then = awaiting or texts.say("wechat.will_call_back")
        return texts.say("wechat.opened", case_id=case_id, then=then)
    return texts.say("wechat.supplement", case_id=case_id, then=awaiting).rstrip()


@dataclass(frozen=True, slots=True)
class ReceiveWeChatPush(Command):
    """Record a follower's push and file it with a case (the WeChat endpoint's one command)."""

    push: WeChatPush
    raw: str


@dataclass(frozen=True, slots=True)
class WeChatAnswer:
    """The text to reply with, the case the push went with, and whether it was a redelivery."""

    reply: str
    duplicate: bool
    case_id: str | None = None


def _received(records: Iterable[RecordedEvent]) -> list[tuple[int, WeChatMessageReceived]]:
    found = ((r.version, from_recorded(r)) for r in records)
    return [(v, e) for v, e in found if isinstance(e, WeChatMessageReceived)]


async def _is_open(store: EventStore, case_id: str | None) -> bool:
    if case_id is None:
        return False
    try:
        return (await load_case(store, case_id)).status not in DONE
    except NotFound:
        return True  # opened by a push whose registration is still to come (`_act` sees to it)


async def _file(cmd: ReceiveWeChatPush, store: EventStore,
                clock: Clock) -> tuple[Conversation, WeChatMessageReceived, bool]:
    """Append the push filed with its case; a redelivery answers the first filing."""
    push, key = cmd.push, cmd.push.idempotency_key
    stream = conversation_stream(push.from_user)
    for _ in range(FILING_ATTEMPTS):
        seen = await store.find_by_idempotency_key(key)
        records = await store.read_stream(stream)
        if seen is not None and seen.stream == stream:
            earlier = [e for v, e in _received(records) if v < seen.first_version]
            [first] = [e for v, e in _received(records) if v == seen.first_version]
            return conversation_of(earlier), first, True
        state = conversation_of(e for _, e in _received(records))
        now = clock.now()
        received = file_push(state, push, cmd.raw, case_open=await _is_open(store, state.case_id),
                             new_case=new_case_id(now, f"{key}:case"))
        meta = metadata(actor=f"wechat:{pseudonym(push.from_user)}", channel="wechat", received_at=now)
        version = records[-1].version if records else -1
        try:
            result = await store.append(stream, [to_new_event(received, meta)], version,
                                        idempotency_key=key)
        except WrongExpectedVersion:
            continue  # another push of this follower got in first: decide again after it
        if not result.duplicate:
            return state, received, False
    raise StaleVersion(stream, version, await store.stream_version(stream))


async def _act(state: Conversation, received: WeChatMessageReceived, store: EventStore,
               clock: Clock) -> None:
    """Open or join the push's case (idempotent: a redelivery completes what a failure left)."""
    if received.case_id is None:
        return
    if received.opened:
        await register_case(registration(state, received), store=store, clock=clock)
        return
    opening = state.opening
    if opening is not None and opening.case_id == received.case_id and (
            await store.stream_version(case_stream(received.case_id)) < 0):
        await register_case(opening, store=store, clock=clock)
    stream = conversation_stream(received.push.from_user)
    meta = metadata(actor=f"wechat:{pseudonym(received.push.from_user)}", channel="wechat",
                    correlation_id=stream)
    now = clock.now()
    found = case_events(state, received, now)
    if received.push.place is not None:
        located = case_located(await load_case(store, received.case_id), received, now)
        found += [located] if located is not None else []
    events = [to_new_event(e, meta, subject=subject("openid", received.push.from_user)) for e in found]
    await store.append(case_stream(received.case_id), events, ANY,
                       idempotency_key=f"{received.push.idempotency_key}:case")


async def receive_wechat_push(cmd: ReceiveWeChatPush, *, store: EventStore, clock: Clock,
                              texts: Texts = CHINESE) -> WeChatAnswer:
    """Record the push filed with its case, open or join that case, and answer the reply."""
    state, received, duplicate = await _file(cmd, store, clock)
    await _act(state, received, store, clock)
    return WeChatAnswer(reply(state, received, texts), duplicate, received.case_id)


HANDLERS: dict[type, Handler] = {ReceiveWeChatPush: receive_wechat_push}
