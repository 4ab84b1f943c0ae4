"""Self-service answers: a consultation by SMS or WeChat answered from the knowledge base.

When a `consultation` case opens from an SMS or a WeChat text, the policy
searches the published articles for its text. If the best article's
confidence clears `ANSWER_THRESHOLD` and it has a short answer, the policy

1. records `KnowledgeAnswerGiven` on the contact's stream `kbanswer-<contact>`
   (once per case: a retried reaction re-sends what it recorded, whatever
   was published since),
2. asks the outbox for the reply on the channel the citizen used (the
   article's short answer, and how to reach a person), and
3. closes the case as answered by the knowledge base.

That answer is the citizen's one reply: the acknowledgement SMS of acceptance is not sent
for these consultations (`notify.outbox.self_service_candidate`); when no article fits, this
policy sends that acknowledgement instead.

The citizen's next message opens a new case as usual; a contact answered in
the last `HANDOFF_WINDOW` is not answered automatically again, so replying
reaches a person. The threshold was chosen on a labelled set of consultation
questions for precision >= 0.9 (`python -m bench.knowledge`, bench/RESULTS.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog

from dispatch.cases.actions import CloseCase
from dispatch.cases.events import CaseRegistered
from dispatch.core.bus import Send
from dispatch.core.capability import Deps
from dispatch.core.messages import Event, event, from_recorded, metadata, to_new_event
from dispatch.core.personal import pseudonym
from dispatch.core.phone import caller_key
from dispatch.core.texts import CHINESE, Texts
from dispatch.knowledge.index import IndexHolder
from dispatch.notify.outbox import (
    SELF_SERVICE_CHANNELS,
    RequestNotification,
    acknowledgement,
    self_service_candidate,
)
from eventstore import ANY, EventStore, RecordedEvent

log = structlog.get_logger(__name__)

ANSWER_THRESHOLD = 0.35
"""Least confidence of the best article for an automatic answer (precision >= 0.9 when measured)."""
HANDOFF_WINDOW = timedelta(hours=24)
"""A contact answered automatically within this time reaches a person with their next message."""
CHANNELS: frozenset[str] = SELF_SERVICE_CHANNELS
CLOSE_REASON = "answered_by_knowledge_base"
_STREAM_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,120}$")


@event
@dataclass(frozen=True, slots=True)
class KnowledgeAnswerGiven(Event):
    """A consultation was answered with an article's short answer, and its case closed."""

    case_id: str
    article_id: str
    title: str
    answer: str
    confidence: float
    channel: str
    at: datetime


def answer_stream(channel: str, contact: str) -> str:
    """The stream of the automatic answers one contact (phone number or OpenID) received."""
    return f"kbanswer-{channel}-{pseudonym(caller_key(contact) if channel == 'sms' else contact)}"


def contact_of(evt: CaseRegistered) -> str | None:
    """Where the answer goes: the sender's number for SMS, the OpenID for WeChat."""
    return evt.caller.phone if evt.channel == "sms" else evt.caller.openid


class SelfServicePolicy:
    """Answers SMS and WeChat consultations from the knowledge base when it is confident.

    Keyed by contact (`eventstore.subscriptions.Keyed`): one citizen's cases in
    log order (the second finds the answer to the first), others' at the same time.
    """

    name = "knowledge-self-service"
    categories: frozenset[str] | None = frozenset({"case"})
    types = frozenset({"CaseRegistered"})
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""

    def __init__(self, handle: Send, store: EventStore, pool: asyncpg.Pool, holder: IndexHolder,
                 threshold: float = ANSWER_THRESHOLD, texts: Texts = CHINESE) -> None:
        self._handle = handle
        self._texts = texts
        self._store = store
        self._pool = pool
        self._holder = holder
        self._threshold = threshold

    def key(self, event: RecordedEvent) -> str:
        """The contact the reaction answers (the case stream when there is none)."""
        caller = event.data.get("caller")
        if event.type == "CaseRegistered" and isinstance(caller, dict):
            contact = caller.get("phone") or caller.get("openid")
            if isinstance(contact, str) and contact:
                return contact
        return event.stream

    async def react(self, event: RecordedEvent) -> None:
        """Answer a new SMS or WeChat consultation when an article fits well enough."""
        if event.type != "CaseRegistered":
            return
        evt = from_recorded(event)
        if not isinstance(evt, CaseRegistered) or not self_service_candidate(evt):
            return
        contact = contact_of(evt)
        answer = await self._answer(evt, contact) if contact else None
        if answer is None or not contact:
            if evt.caller.phone:  # no answer: the usual acknowledgement, the one reply
                await self._handle(acknowledgement(evt.case_id, evt.caller.phone, self._texts))
            return
        text = self._texts.say("knowledge.reply", answer=answer.answer, title=answer.title,
                               case_id=evt.case_id)
        await self._handle(RequestNotification(
            dedup_key=f"kb:{evt.case_id}", channel=evt.channel, to=contact, text=text,
            case_id=evt.case_id, reason=CLOSE_REASON, actor="policy:knowledge"))
        await self._handle(CloseCase(
            case_id=evt.case_id, reason=f"{CLOSE_REASON}:{answer.article_id}", actor="policy:knowledge",
            idempotency_key=f"kb-close:{evt.case_id}"))
        log.info("consultation_answered", case_id=evt.case_id, article_id=answer.article_id,
                 confidence=answer.confidence)

    async def _answer(self, evt: CaseRegistered, contact: str) -> KnowledgeAnswerGiven | None:
        """The answer recorded for this case, a new one, or None (a person answers)."""
        stream = answer_stream(evt.channel, contact)
        given = [e for e in map(from_recorded, await self._store.read_stream(stream))
                 if isinstance(e, KnowledgeAnswerGiven)]
        for earlier in given:
            if earlier.case_id == evt.case_id:
                return earlier  # a repeated reaction: send and close as decided
        if given and given[-1].at > evt.accepted_at - HANDOFF_WINDOW:
            return None  # the citizen replied to an automatic answer: a person takes it
        hits = await self._holder.search(self._pool, evt.description, category=evt.category, k=1)
        if not hits or hits[0].confidence < self._threshold or not hits[0].short_answer:
            return None
        best = hits[0]
        answer = KnowledgeAnswerGiven(evt.case_id, best.article_id, best.title, best.short_answer,
                                      best.confidence, evt.channel, evt.accepted_at)
        meta = metadata(actor="policy:knowledge", channel=evt.channel, correlation_id=evt.case_id)
        await self._store.append(stream, [to_new_event(answer, meta)], ANY,
                                 idempotency_key=f"kb-answer:{evt.case_id}")
        return answer


def reactors(deps: Deps) -> list[SelfServicePolicy]:
    """The self-service policy, with a search index of its own."""
    return [SelfServicePolicy(deps.bus.handle, deps.store, deps.pool, IndexHolder(), texts=deps.texts)]
