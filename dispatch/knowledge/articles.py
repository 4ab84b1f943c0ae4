"""Knowledge-base articles (知识库) as events: draft, review, publish, revise, withdraw.

Each article is a stream `article-<article_id>`. Every draft or revision is a
numbered `revision` whose content is kept for good; the workflow moves the
newest revision through review (`in_review` -> `approved` or back to `draft`)
to `published`. A published article stays live (its `published_revision`)
while a newer revision is drafted and reviewed; publishing that revision
replaces it; withdrawing takes the article out of search.

Who may do what (roles of `gateway.auth`): agents and dispatchers draft,
revise and submit; dispatchers review, publish and withdraw (an admin may do
anything); a reviewer never approves a revision they wrote. The rules are pure
deciders taking the time from the caller; `handle_article` loads, decides and
appends with the stream's version.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from dispatch.cases.registration import CATEGORIES
from dispatch.cases.state import load_case
from dispatch.cases.status import CaseStatus
from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand, NotAllowed, NotFound, StaleVersion
from dispatch.core.messages import Command, Event, event, from_recorded, metadata, to_new_event
from eventstore import NO_STREAM, EventStore, WrongExpectedVersion

ARTICLE_CATEGORY = "article"
KINDS: tuple[str, ...] = ("policy", "procedure", "faq", "outage_notice")
STATUSES: tuple[str, ...] = ("draft", "in_review", "approved", "published", "withdrawn")
MAY_WRITE: tuple[str, ...] = ("agent", "dispatcher", "admin")
"""Roles that draft, revise, submit and propose articles."""
MAY_REVIEW: tuple[str, ...] = ("dispatcher", "admin")
"""Roles that review, publish and withdraw articles."""
SYSTEM_ACTORS: tuple[str, ...] = ("loader",)
"""Actors outside the token roles that may publish at once (the reference loader)."""
MAX_TITLE = 200
MAX_BODY = 20_000
MAX_SHORT_ANSWER = 300
"""A short answer fits in two SMS (it is what self-service replies send)."""
CASE_DONE: frozenset[CaseStatus] = frozenset(
    {CaseStatus.COMPLETED, CaseStatus.CALLED_BACK, CaseStatus.ARCHIVED})


@dataclass(frozen=True, slots=True)
class ArticleContent:
    """What one revision of an article says."""

    kind: str
    title: str
    body: str
    short_answer: str = ""
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()


@event
@dataclass(frozen=True, slots=True)
class ArticleDrafted(Event):
    """A new article's first revision was written (from a completed case when `source_case_id`)."""

    article_id: str
    revision: int
    content: ArticleContent
    by: str
    at: datetime
    source_case_id: str | None = None

    def personal_fields(self) -> tuple[str, ...]:
        """Proposed from a case, the draft is the caller's words and the unit's result about him
        (his name, his address): personal data of the case's caller, sealed with his key, so his
        erasure erases them here too. A revision written afterwards is the centre's."""
        return ("content.title", "content.body", "content.short_answer") if self.source_case_id else ()


@event
@dataclass(frozen=True, slots=True)
class ArticleRevised(Event):
    """A new revision was written; earlier revisions (and a published one) stay as they were."""

    article_id: str
    revision: int
    content: ArticleContent
    by: str
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class ArticleSubmitted(Event):
    """A revision was sent for review."""

    article_id: str
    revision: int
    by: str
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class ArticleReviewed(Event):
    """A reviewer approved a revision, or sent it back to draft with a note."""

    article_id: str
    revision: int
    approved: bool
    note: str
    by: str
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class ArticlePublished(Event):
    """A revision became the live one that search finds."""

    article_id: str
    revision: int
    by: str
    at: datetime


@event
@dataclass(frozen=True, slots=True)
class ArticleWithdrawn(Event):
    """The article was taken out of search (outdated policy, restored outage...)."""

    article_id: str
    reason: str
    by: str
    at: datetime


@dataclass(slots=True)
class ArticleState:
    """An article folded from its stream: every revision, the workflow and the live revision."""

    article_id: str
    version: int = -1
    status: str = "draft"
    revisions: dict[int, ArticleContent] = field(default_factory=dict)
    authors: dict[int, str] = field(default_factory=dict)
    published_revision: int | None = None
    source_case_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def revision(self) -> int:
        """The newest revision's number (0 before the first draft)."""
        return max(self.revisions, default=0)

    @property
    def content(self) -> ArticleContent | None:
        """The newest revision's content."""
        return self.revisions.get(self.revision)

    @property
    def published(self) -> ArticleContent | None:
        """The live revision's content, if the article is published."""
        return None if self.published_revision is None else self.revisions[self.published_revision]

    def apply(self, evt: Event, version: int) -> None:
        """Fold one event of this article's stream."""
        self.version = version
        at: datetime | None = getattr(evt, "at", None)
        self.created_at = self.created_at or at
        self.updated_at = at
        match evt:
            case ArticleDrafted() | ArticleRevised():
                self.revisions[evt.revision] = evt.content
                self.authors[evt.revision] = evt.by
                self.status = "draft"
                if isinstance(evt, ArticleDrafted):
                    self.source_case_id = evt.source_case_id
            case ArticleSubmitted():
                self.status = "in_review"
            case ArticleReviewed():
                self.status = "approved" if evt.approved else "draft"
            case ArticlePublished():
                self.status = "published"
                self.published_revision = evt.revision
            case ArticleWithdrawn():
                self.status = "withdrawn"
                self.published_revision = None
        self.history.append({"type": type(evt).__name__, "version": version,
                             "revision": getattr(evt, "revision", None), "by": getattr(evt, "by", None),
                             "at": at, "note": getattr(evt, "note", None) or getattr(evt, "reason", None)})


def article_stream(article_id: str) -> str:
    """The stream of one article."""
    return f"{ARTICLE_CATEGORY}-{article_id}"


def new_article_id(seed: str | None = None) -> str:
    """A readable article number: `KB` + 10 base32 characters (from `seed` if given)."""
    digest = hashlib.sha256(seed.encode()).digest() if seed is not None else uuid.uuid4().bytes
    return "KB" + "".join("ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[b % 32] for b in digest[:10])


@dataclass(frozen=True, slots=True, kw_only=True)
class ArticleCommand(Command):
    """Base of the article commands: which article, on which version, by whom (`role:subject`)."""

    article_id: str
    actor: str
    expected_version: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftArticle(ArticleCommand):
    """Write a new article's first revision (`source_case_id`: proposed from a completed case)."""

    content: ArticleContent
    source_case_id: str | None = None
    subject: str | None = None
    """The data subject of the source case (its caller), whose key seals the draft."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviseArticle(ArticleCommand):
    """Write a new revision of an article."""

    content: ArticleContent


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitArticle(ArticleCommand):
    """Send the newest revision for review."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewArticle(ArticleCommand):
    """Approve the revision in review, or send it back with a note."""

    approved: bool
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishArticle(ArticleCommand):
    """Make the approved revision the live one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawArticle(ArticleCommand):
    """Take a published article out of search."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportArticle(ArticleCommand):
    """Record a reference article as published at once (the loader); unchanged content writes nothing."""

    content: ArticleContent


def role_of(actor: str) -> str:
    """The role part of a `role:subject` actor."""
    return actor.partition(":")[0]


def _may(actor: str, roles: tuple[str, ...], what: str) -> None:
    role = role_of(actor)
    if role != "admin" and role not in roles:
        raise NotAllowed(f"role {role} may not {what} articles")


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise NotAllowed(message)


def check_content(content: ArticleContent) -> ArticleContent:
    """The content with its text trimmed, or `InvalidCommand` naming the bad field."""
    content = replace(content, title=content.title.strip(), body=content.body.strip(),
                      short_answer=content.short_answer.strip(),
                      keywords=tuple(k.strip() for k in content.keywords if k.strip()),
                      categories=tuple(dict.fromkeys(content.categories)))
    if content.kind not in KINDS:
        raise InvalidCommand(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if not content.title or len(content.title) > MAX_TITLE:
        raise InvalidCommand(f"title needs 1 to {MAX_TITLE} characters", field="title")
    if not content.body or len(content.body) > MAX_BODY:
        raise InvalidCommand(f"body needs 1 to {MAX_BODY} characters", field="body")
    if len(content.short_answer) > MAX_SHORT_ANSWER:
        raise InvalidCommand(f"short_answer longer than {MAX_SHORT_ANSWER} characters", field="short_answer")
    if unknown := [c for c in content.categories if c not in CATEGORIES]:
        raise InvalidCommand(f"categories are case categories ({', '.join(CATEGORIES)}); not "
                             f"{', '.join(unknown)[:200]}", field="categories")
    return content


def _exists(s: ArticleState) -> None:
    if s.version < 0:
        raise NotFound(f"article {s.article_id} not found")


def decide_draft(s: ArticleState, c: DraftArticle, now: datetime) -> list[Event]:
    """A new article's first revision."""
    _may(c.actor, MAY_WRITE, "draft")
    _need(s.version < 0, f"article {s.article_id} exists already")
    return [ArticleDrafted(s.article_id, 1, check_content(c.content), c.actor, now, c.source_case_id)]


def decide_revise(s: ArticleState, c: ReviseArticle, now: datetime) -> list[Event]:
    """A new revision, in any state but review (a published revision stays live meanwhile)."""
    _may(c.actor, MAY_WRITE, "revise")
    _exists(s)
    _need(s.status != "in_review", f"article {s.article_id} is in review; review it first")
    return [ArticleRevised(s.article_id, s.revision + 1, check_content(c.content), c.actor, now)]


def decide_submit(s: ArticleState, c: SubmitArticle, now: datetime) -> list[Event]:
    """Send a draft for review."""
    _may(c.actor, MAY_WRITE, "submit")
    _exists(s)
    _need(s.status == "draft", f"article {s.article_id} is {s.status}; only a draft is submitted")
    return [ArticleSubmitted(s.article_id, s.revision, c.actor, now)]


def decide_review(s: ArticleState, c: ReviewArticle, now: datetime) -> list[Event]:
    """Approve or send back the revision in review; never one's own revision (four eyes)."""
    _may(c.actor, MAY_REVIEW, "review")
    _exists(s)
    _need(s.status == "in_review", f"article {s.article_id} is {s.status}; nothing to review")
    _need(s.authors.get(s.revision) != c.actor, "a reviewer may not review their own revision")
    if not c.approved and not c.note.strip():
        raise InvalidCommand("sending a revision back needs a note", field="note")
    return [ArticleReviewed(s.article_id, s.revision, c.approved, c.note.strip(), c.actor, now)]


def decide_publish(s: ArticleState, c: PublishArticle, now: datetime) -> list[Event]:
    """Publish the approved revision."""
    _may(c.actor, MAY_REVIEW, "publish")
    _exists(s)
    _need(s.status == "approved",
          f"article {s.article_id} is {s.status}; only an approved revision is published")
    return [ArticlePublished(s.article_id, s.revision, c.actor, now)]


def decide_withdraw(s: ArticleState, c: WithdrawArticle, now: datetime) -> list[Event]:
    """Take a published article out of search."""
    _may(c.actor, MAY_REVIEW, "withdraw")
    _exists(s)
    _need(s.published_revision is not None, f"article {s.article_id} is not published")
    if not c.reason.strip():
        raise InvalidCommand("withdrawing needs a reason", field="reason")
    return [ArticleWithdrawn(s.article_id, c.reason.strip(), c.actor, now)]


def decide_import(s: ArticleState, c: ImportArticle, now: datetime) -> list[Event]:
    """Draft (or revise) and publish in one step; nothing when the live content is the same."""
    _need(role_of(c.actor) in (*SYSTEM_ACTORS, "admin"), "only the loader imports articles")
    content = check_content(c.content)
    if s.published == content and s.status == "published":
        return []
    revision = s.revision + 1
    first: Event = (ArticleDrafted(s.article_id, revision, content, c.actor, now) if s.version < 0
                    else ArticleRevised(s.article_id, revision, content, c.actor, now))
    return [first, ArticlePublished(s.article_id, revision, c.actor, now)]


Decider = Callable[[ArticleState, Any, datetime], Sequence[Event]]
DECIDERS: dict[type[ArticleCommand], Decider] = {
    DraftArticle: decide_draft,
    ReviseArticle: decide_revise,
    SubmitArticle: decide_submit,
    ReviewArticle: decide_review,
    PublishArticle: decide_publish,
    WithdrawArticle: decide_withdraw,
    ImportArticle: decide_import,
}


async def load_article(store: EventStore, article_id: str) -> ArticleState:
    """An article folded from its stream (version -1 when there is none)."""
    state = ArticleState(article_id)
    for record in await store.read_stream(article_stream(article_id)):
        evt = from_recorded(record)
        if evt is not None:
            state.apply(evt, record.version)
    return state


async def handle_article(cmd: ArticleCommand, *, store: EventStore, clock: Clock) -> ArticleState:
    """Load the article, check the version, decide and append; answer the new state."""
    state = await load_article(store, cmd.article_id)
    if cmd.expected_version is not None and cmd.expected_version != state.version:
        raise StaleVersion(article_stream(cmd.article_id), cmd.expected_version, state.version)
    events = DECIDERS[type(cmd)](state, cmd, clock.now())
    if not events:
        return state
    meta = metadata(actor=cmd.actor, correlation_id=article_stream(cmd.article_id))
    subject = cmd.subject if isinstance(cmd, DraftArticle) else None
    try:
        result = await store.append(article_stream(cmd.article_id),
                                    [to_new_event(e, meta, subject=subject) for e in events],
                                    NO_STREAM if state.version < 0 else state.version)
    except WrongExpectedVersion as exc:
        raise StaleVersion(article_stream(cmd.article_id), state.version, exc.actual) from exc
    for offset, evt in enumerate(events):
        state.apply(evt, result.first_version + offset)
    return state


@dataclass(frozen=True, slots=True)
class ProposeArticle(Command):
    """Propose a completed case as an article: a draft from its description and result."""

    case_id: str
    actor: str
    kind: str = "faq"
    title: str | None = None
    body: str | None = None
    short_answer: str = ""


async def propose_article(cmd: ProposeArticle, *, store: EventStore, clock: Clock) -> ArticleState:
    """Draft an article from a completed case (its text and the unit's result); one per case."""
    case = await load_case(store, cmd.case_id)
    _need(case.status in CASE_DONE, f"case {cmd.case_id} is {case.status}; only a completed case is proposed")
    title = cmd.title or case.description.strip().splitlines()[0][:60] or cmd.case_id
    body = cmd.body or f"问：{case.description.strip()}\n答：{(case.result or '').strip() or '（待补充）'}"
    short = cmd.short_answer or (case.result or "")[:MAX_SHORT_ANSWER]
    content = ArticleContent(cmd.kind, title, body, short, (case.category,) if case.category else ())
    return await handle_article(DraftArticle(
        article_id=new_article_id(f"case:{cmd.case_id}"), actor=cmd.actor, content=content,
        source_case_id=cmd.case_id, subject=case.subject), store=store, clock=clock)


HANDLERS: dict[type[Command], Handler] = {
    **{cmd: handle_article for cmd in DECIDERS}, ProposeArticle: propose_article}
