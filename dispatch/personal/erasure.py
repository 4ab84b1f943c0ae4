"""Erasure of a data subject (PIPL Art. 47): crypto-shredding plus the read models.

`EraseSubject` names a subject as an operator types it (a phone number, an
OpenID, an elder id, `kind:value`). The subject is widened to the same person's
other identifiers the read models know (a number and the OpenID that gave it;
an elder's number and alarm devices; a number and the e-mail given with it), and in ONE transaction:

1. their keys are deleted (`Keyring.erase`): every event sealed with them -
   cases, calls, SMS, WeChat pushes, alarms, notices, the registry - reads as
   erased from now on, in every process (NOTIFY) and every replay or rebuild;
2. the read models drop or blank what they copied: the subject's cases are
   folded again from their (now erased) events, and the caller card, call
   records, call-back tasks, notices, duplicate-link candidates, number links,
   the registry and the elders' registry lose the identifiers; the reports keep
   their counts (a repeat caller becomes an anonymous token, the same for all
   of his cases);
3. `PersonalDataErased` is recorded (who, why, on what legal basis, which
   cases, how many keys; the identifiers only as keyed pseudonyms, also kept in
   `erasures` so that a later access request finds the erased cases) - never
   the subject itself.

Before that it refuses, changing nothing: while a case of the person is on legal
hold, unless the basis is `order` (`LegalHoldActive`, `dispatch/personal/hold.py`);
and when the command names the cases it was decided on (`expect_case_ids`, the
retention job) and the person's cases are others now (`SubjectChanged`).

Nothing else changes: case ids, categories, times, links, incidents, counts.
Live views' Redis history is trimmed by the gateway (`gateway/erasure.py`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from dispatch.cases.read_model import refold
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import case_stream, fold
from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand, NotAllowed
from dispatch.core.messages import Command, Event, event, metadata, to_new_event
from dispatch.core.personal import ERASED, parse_subject, pseudonym
from dispatch.personal.hold import LegalHoldActive, held
from eventstore import NO_STREAM, EventStore
from eventstore.postgres import append_on, read_streams_on
from eventstore.shredding import keyring_of

ERASURE_CATEGORY = "erasure"
MAX_TEXT = 500
LEGAL_BASES: tuple[str, ...] = ("request", "retention", "consent_withdrawn", "purpose_fulfilled", "order")
"""Why personal data is erased (PIPL Art. 47(1)): the person asked; its retention period
ended; consent was withdrawn; the purpose was fulfilled; a competent authority ordered it."""


@dataclass(frozen=True, slots=True)
class EraseSubject(Command):
    """Erase everything held about one person."""

    subject: str
    reason: str
    legal_basis: str
    actor: str
    expect_case_ids: tuple[str, ...] | None = None
    """When given (the retention job), the person's cases must be exactly these: a case that
    arrived since they were chosen makes the erasure refuse (`SubjectChanged`)."""


class SubjectChanged(NotAllowed):
    """The person's cases are not those the erasure was decided on."""

    code = "subject_changed"


@event
@dataclass(frozen=True, slots=True)
class PersonalDataErased(Event):
    """A subject's keys were deleted and the read models scrubbed (the subject is not named)."""

    erasure_id: str
    kinds: tuple[str, ...]
    keys: int
    case_ids: tuple[str, ...]
    reason: str
    legal_basis: str
    by: str
    at: datetime
    subjects: tuple[str, ...] = ()
    """Keyed pseudonyms of the erased identifiers (`pseudonym`), so that a later access request
    finds this erasure and its cases; they reveal no identifier without the deployment's secret."""


@dataclass(frozen=True, slots=True)
class Person:
    """One person's identifiers, as far as the read models link them."""

    phones: frozenset[str] = frozenset()
    openids: frozenset[str] = frozenset()
    elders: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    """A web reporter's e-mail: his subject when he gave no number (`CallerInfo.data_subject`)."""

    @property
    def subjects(self) -> list[str]:
        """The keys' subjects (`dispatch/core/personal.py`)."""
        return sorted({*(f"phone:{p}" for p in self.phones), *(f"openid:{o}" for o in self.openids),
                       *(f"elder:{e}" for e in self.elders), *(f"device:{d}" for d in self.devices),
                       *(f"email:{m}" for m in self.emails)})

    def args(self) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
        """The SQL array arguments: phones, OpenIDs, elders, devices, e-mails."""
        return (sorted(self.phones), sorted(self.openids), sorted(self.elders), sorted(self.devices),
                sorted(self.emails))


def person_of(subject: str) -> Person:
    """The person named by one subject, before widening."""
    kind, _, value = subject.partition(":")
    return Person(**{{"phone": "phones", "openid": "openids", "elder": "elders",
                      "device": "devices", "email": "emails"}[kind]: frozenset({value})})


_WIDEN = """
SELECT
  ARRAY(SELECT phone FROM openid_phones WHERE openid = ANY($2)
        UNION SELECT caller_phone FROM cases WHERE (caller_openid = ANY($2) OR elder_id = ANY($3))
                                              AND caller_phone IS NOT NULL
        UNION SELECT phone FROM ref_elders WHERE id = ANY($3)
        UNION SELECT caller_phone FROM cases WHERE caller_email = ANY($5) AND caller_phone IS NOT NULL)
        AS phones,
  ARRAY(SELECT openid FROM openid_phones WHERE phone = ANY($1)
        UNION SELECT caller_openid FROM cases WHERE caller_phone = ANY($1) AND caller_openid IS NOT NULL)
        AS openids,
  ARRAY(SELECT elder_id FROM ref_devices WHERE account = ANY($4)
        UNION SELECT id FROM ref_elders WHERE phone = ANY($1)) AS elders,
  ARRAY(SELECT account FROM ref_devices WHERE elder_id = ANY($3)) AS devices,
  ARRAY(SELECT caller_email FROM cases WHERE caller_phone = ANY($1) AND caller_email IS NOT NULL)
        AS emails
"""


async def widen(conn: asyncpg.Connection, person: Person) -> Person:
    """The person with the identifiers the read models link to theirs (until nothing is added)."""
    for _ in range(4):
        row = await conn.fetchrow(_WIDEN, *person.args())
        wider = Person(person.phones | set(row["phones"]), person.openids | set(row["openids"]),
                       person.elders | set(row["elders"]), person.devices | set(row["devices"]),
                       person.emails | set(row["emails"]))
        if wider == person:
            break
        person = wider
    return person


_CASES = """SELECT case_id FROM cases WHERE caller_phone = ANY($1) OR caller_openid = ANY($2)
            OR elder_id = ANY($3) OR caller_email = ANY($4) ORDER BY case_id"""


async def cases_of(conn: asyncpg.Connection, person: Person) -> list[str]:
    """The ids of the person's cases the read model knows."""
    phones, openids, elders, _, emails = person.args()
    return [r["case_id"] for r in await conn.fetch(_CASES, phones, openids, elders, emails)]

_SCRUB: tuple[str, ...] = (
    # the caller card's history and the links between a number and an OpenID: gone
    "DELETE FROM caller_contacts WHERE phone = ANY($1) OR openid = ANY($2) OR case_id = ANY($5)",
    "DELETE FROM openid_phones WHERE phone = ANY($1) OR openid = ANY($2)",
    "DELETE FROM customers WHERE phone = ANY($1)",
    "DELETE FROM ref_devices WHERE elder_id = ANY($3) OR account = ANY($4)",
    "DELETE FROM ref_elders WHERE id = ANY($3)",
    # records that stay, without whom they were about
    f"UPDATE calls SET caller = '{ERASED}' WHERE caller = ANY($1)",
    f"UPDATE missed_calls SET caller = '{ERASED} ' || task_id WHERE caller = ANY($1)",
    "UPDATE link_candidates SET phone = NULL, openid = NULL "
    "WHERE case_id = ANY($5) OR phone = ANY($1) OR openid = ANY($2)",
    # an elder's case is located at his home: its coordinates are his (`CaseRegistered.personal_fields`)
    "UPDATE link_candidates SET lat = NULL, lon = NULL "
    "WHERE case_id IN (SELECT case_id FROM cases WHERE elder_id = ANY($3))",
    f"UPDATE notification_outbox SET to_addr = '{ERASED}', body = '{ERASED}' "
    "WHERE case_id = ANY($5) OR to_addr = ANY($1) OR to_addr = ANY($2)",
    # an article proposed from a case holds the caller's words in its first revision (sealed
    # with his key, `ArticleDrafted.personal_fields`); the search index rebuilds on the generation
    f"UPDATE knowledge_revisions r SET title = '{ERASED}', body = '{ERASED}', short_answer = '{ERASED}' "
    "FROM knowledge_articles a WHERE a.article_id = r.article_id AND a.source_case_id = ANY($5) "
    "AND r.revision = 1",
    f"UPDATE knowledge_articles SET title = '{ERASED}' WHERE source_case_id = ANY($5) AND revision = 1",
    "UPDATE knowledge_index SET generation = generation + 1 "
    "WHERE EXISTS (SELECT 1 FROM knowledge_articles WHERE source_case_id = ANY($5))",
    f"UPDATE elderly_alerts SET account = '{ERASED}' WHERE account = ANY($4) OR elder_id = ANY($3)",
    # the reports count a repeat caller by a token: the same for all his cases, naming no one
    # (a caller without a number or an OpenID is his e-mail or his alarm device)
    "UPDATE report_callers SET caller = 'erased:' || md5(caller || $6) "
    "WHERE caller = ANY($1) OR caller = ANY($2) OR caller = ANY($4) OR caller = ANY($7)",
    "UPDATE report_facts SET data = jsonb_set(data, '{caller}', "
    "to_jsonb('erased:' || md5((data->>'caller') || $6))) "
    "WHERE data->>'caller' = ANY($1) OR data->>'caller' = ANY($2) OR data->>'caller' = ANY($4) "
    "OR data->>'caller' = ANY($7)",
)


_PARAM = re.compile(r"\$(\d)")
_TYPES = ("text[]", "text[]", "text[]", "text[]", "text[]", "text", "text[]")


def _bound(sql: str, values: tuple[object, ...]) -> tuple[object, ...]:
    """A scrub statement with only the parameters it uses ($1 phones, $2 OpenIDs, $3 elders,
    $4 devices, $5 case ids, $6 the erasure id, $7 e-mails), numbered from 1 and typed."""
    used = sorted({int(n) for n in _PARAM.findall(sql)})
    numbered = _PARAM.sub(lambda m: f"${used.index(int(m.group(1))) + 1}::{_TYPES[int(m.group(1)) - 1]}", sql)
    return (numbered, *(values[n - 1] for n in used))


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure did."""

    erasure_id: str
    subjects: int
    keys: int
    case_ids: tuple[str, ...]
    phones: tuple[str, ...]
    openids: tuple[str, ...]


def _check(cmd: EraseSubject) -> str:
    subject = parse_subject(cmd.subject)
    if cmd.legal_basis not in LEGAL_BASES:
        raise InvalidCommand(f"legal_basis must be one of {', '.join(LEGAL_BASES)}", field="legal_basis")
    if not cmd.reason.strip() or len(cmd.reason) > MAX_TEXT:
        raise InvalidCommand(f"a reason of at most {MAX_TEXT} characters is required", field="reason")
    return subject


_RECORD = """INSERT INTO erasures (erasure_id, subjects, case_ids, legal_basis, at)
              VALUES ($1, $2::text[], $3::text[], $4, $5)"""


async def _check_cases(conn: asyncpg.Connection, cmd: EraseSubject, case_ids: list[str]) -> None:
    """Refuse when the person's cases are not those expected, or (but on an order) one is on hold.

    The holds are read from the cases' streams, not the read model: a hold set a moment ago counts."""
    if cmd.expect_case_ids is not None and set(cmd.expect_case_ids) != set(case_ids):
        raise SubjectChanged("the person's cases changed since the erasure was decided")
    if cmd.legal_basis == "order" or not case_ids:
        return
    found = await read_streams_on(conn, [case_stream(c) for c in case_ids])
    on_hold = held([fold(c, found[case_stream(c)]) for c in case_ids])
    if on_hold:
        raise LegalHoldActive(on_hold)


async def erase_subject(
    cmd: EraseSubject, *, pool: asyncpg.Pool, store: EventStore, clock: Clock, sla: SlaConfig
) -> Erasure:
    """Delete the person's keys, scrub the read models, record the erasure: one transaction."""
    subject = _check(cmd)
    erasure_id = uuid.uuid4().hex
    now = clock.now()
    async with pool.acquire() as conn, conn.transaction():
        person = await widen(conn, person_of(subject))
        phones, openids, elders, devices, emails = person.args()
        # first the keys: the delete waits for every transaction that opened them to commit
        # (`Keyring.open`), so what those wrote - a case just projected - is scrubbed below; a
        # refusal (a legal hold) rolls the delete back with the rest
        ring = keyring_of(conn)
        keys = await ring.erase(conn, person.subjects)
        case_ids = await cases_of(conn, person)
        await _check_cases(conn, cmd, case_ids)
        values = (phones, openids, elders, devices, case_ids, erasure_id, emails)
        for sql in _SCRUB:
            await conn.execute(*_bound(sql, values))
        await refold(conn, case_ids, sla, now)
        kinds = tuple(sorted({s.partition(":")[0] for s in person.subjects}))
        names = tuple(pseudonym(s) for s in person.subjects)
        evt = PersonalDataErased(erasure_id, kinds, len(keys), tuple(case_ids), cmd.reason.strip(),
                                 cmd.legal_basis, cmd.actor, now, names)
        await conn.execute(_RECORD, erasure_id, list(names), case_ids, cmd.legal_basis, now)
        await append_on(conn, f"{ERASURE_CATEGORY}-{erasure_id}",
                        [to_new_event(evt, metadata(actor=cmd.actor))], NO_STREAM)
    ring.forget(keys, person.subjects)  # what this process cached while the transaction ran
    store.wake((ERASURE_CATEGORY, "case"))
    return Erasure(erasure_id, len(person.subjects), len(keys), tuple(case_ids), tuple(phones),
                   tuple(openids))


HANDLERS: dict[type[Command], Handler] = {EraseSubject: erase_subject}
