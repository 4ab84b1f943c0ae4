"""Personal data with an end: crypto-shredding of events' personal fields.

An event that carries personal data is appended with a `Personal` note: whose
data it is (the *subject*: a normalised phone number, an OpenID, an elder, a
device) and where in its data the personal values are (paths). On the way into
the log those values are taken out, encrypted together as ONE box with the
subject's key (AES-256-GCM) and replaced by a placeholder; the box, the key id
and the paths go into the event's metadata under `pd`. The hash chain and the
seals cover what is stored - placeholders and ciphertext - so they never
change.

On the way out (every read of the store) the box is opened and the values put
back, transparently. Keys live in `subject_keys` (migration 0006), never in the
log. Erasing a subject deletes its key: from then on every read, replay,
rebuild and export finds the box unopenable and shows the fields as erased
(`ERASED` for text, null for numbers, empty for lists and objects) while the
rest of the event - types, times, categories, links - is untouched.

Caching: keys are cached per process (`Keyring`, one per pool) for `TTL`
seconds; an erasure in this process forgets them at once and other processes
are told by NOTIFY (`ERASURE_CHANNEL`), the TTL bounding a missed notice. Keys
created inside a caller's transaction are never cached (the transaction may
still roll back and take the key with it).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eventstore import jsontext
from eventstore.records import AppendArgs, Path, Personal, RecordedEvent

SEALED = "pd"
"""Metadata key of a sealed event: `{"key": key id, "at": [paths], "t": kinds, "box": base64}`."""
PLACEHOLDER = "$pd"
"""What a sealed value is replaced by in the stored data."""
ERASED = "[erased]"
"""What an erased text reads as (numbers and booleans read as null, lists and objects as empty)."""
ERASURE_CHANNEL = "intake_erasure"
"""NOTIFY channel on which an erasure names the deleted key ids (comma-separated)."""
TTL = 30.0
"""Seconds a process trusts a cached key before asking the database again."""
_NONCE = 12
_RECENT = 20_000
"""How many events read lately a keyring keeps (the newest read)."""
_PER_NOTICE = 200
"""Key ids per erasure NOTIFY (37 bytes each with its comma; PostgreSQL takes under 8000)."""


class ShreddingError(Exception):
    """A personal-data box that cannot be sealed or is not what was sealed."""


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "s"
    if isinstance(value, list):
        return "l"
    if isinstance(value, dict):
        return "o"
    return "n"


_ERASED: dict[str, Callable[[], Any]] = {"s": lambda: ERASED, "l": list, "o": dict, "n": lambda: None}


def _get(data: Any, path: Path) -> Any:
    for step in path:
        if isinstance(data, dict):
            data = data.get(step)
        elif isinstance(data, list) and isinstance(step, int) and -len(data) <= step < len(data):
            data = data[step]
        else:
            return None
        if data is None:
            return None
    return data


def _put(root: dict[str, Any], path: Path, value: Any, copied: set[int]) -> dict[str, Any]:
    """`root` with `value` at `path`, copying (once each) the containers on the way; never mutates
    a container it did not copy itself."""
    if id(root) not in copied:
        root = dict(root)
        copied.add(id(root))
    node: Any = root
    for step in path[:-1]:
        child = node[step]
        if id(child) not in copied:
            child = dict(child) if isinstance(child, dict) else list(child)
            copied.add(id(child))
            node[step] = child
        node = child
    node[path[-1]] = value
    return root


@dataclasses.dataclass(slots=True)
class NewKeys:
    """Keys made for subjects with none cached (`Keyring.seal_making`), to be stored by the statement
    that appends the events sealed with them; `event_keys`: per event of the batch, in order, the
    id of the new key it is sealed with (None: a cached key, or no personal data)."""

    made: dict[str, tuple[uuid.UUID, bytes, AESGCM]] = dataclasses.field(default_factory=dict)
    event_keys: list[uuid.UUID | None] = dataclasses.field(default_factory=list)

    def make(self, subject: str) -> tuple[uuid.UUID, AESGCM]:
        """A new key for `subject`."""
        key_id, key = uuid.uuid4(), os.urandom(32)
        aead = AESGCM(key)
        self.made[subject] = (key_id, key, aead)
        return key_id, aead

    def id_of(self, personal: Personal | None) -> uuid.UUID | None:
        """The id of the new key made for `personal`'s subject (None if it has none)."""
        made = None if personal is None else self.made.get(personal.subject)
        return None if made is None else made[0]

    def columns(self) -> list[list[Any] | None]:
        """The key arguments of `intake_append_many` (migration 0007): NULLs when none was made."""
        if not self.made:
            return [None, None, None, None]
        return [list(self.made), [m[0] for m in self.made.values()], [m[1] for m in self.made.values()],
                self.event_keys]


class Keyring:
    """The subjects' keys of one database, cached; seals and opens events with them."""

    def __init__(self, *, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._by_subject: dict[str, tuple[uuid.UUID, float]] = {}
        self._by_id: dict[uuid.UUID, tuple[AESGCM | None, float]] = {}
        self._recent: OrderedDict[int, tuple[RecordedEvent, RecordedEvent | None, float]] = OrderedDict()
        """Events read lately, by position: as stored, and opened (until a time) where that may be kept."""

    # -- keys ---------------------------------------------------------------

    def _cached(self, key_id: uuid.UUID) -> tuple[bool, AESGCM | None]:
        hit = self._by_id.get(key_id)
        if hit is None or (hit[0] is not None and hit[1] < self._clock()):
            return False, None
        return True, hit[0]

    def _remember(
        self, subject: str | None, key_id: uuid.UUID, key: bytes | None, aead: AESGCM | None = None
    ) -> AESGCM | None:
        if aead is None and key is not None:
            aead = AESGCM(key)
        until = self._clock() + self._ttl
        self._by_id[key_id] = (aead, until)
        if subject is not None:
            self._by_subject[subject] = (key_id, until)
        return aead

    @property
    def caches(self) -> bool:
        """Whether this keyring keeps keys at all (one with no TTL asks the database every time)."""
        return self._ttl > 0

    def _cached_key(self, subject: str, now: float) -> tuple[uuid.UUID, AESGCM] | None:
        hit = self._by_subject.get(subject)
        if hit is not None and hit[1] >= now:
            ok, aead = self._cached(hit[0])
            if ok and aead is not None:
                return hit[0], aead
        return None

    async def keys_for(
        self, conn: asyncpg.Connection, subjects: Iterable[str]
    ) -> dict[str, tuple[uuid.UUID, AESGCM]]:
        """Each subject's live key, created where it has none (one or two statements for all)."""
        found: dict[str, tuple[uuid.UUID, AESGCM]] = {}
        missing: list[str] = []
        now = self._clock()
        for subject in dict.fromkeys(subjects):
            hit = self._cached_key(subject, now)
            if hit is None:
                missing.append(subject)
            else:
                found[subject] = hit
        if not missing:
            return found
        cache = not conn.is_in_transaction()  # a key made in a transaction may yet roll back
        # One statement finds the subjects' keys and creates the missing ones (outside a transaction,
        # committed without waiting for its WAL flush: see `_FIND_OR_CREATE`).
        rows = await conn.fetch(_FIND_OR_CREATE if cache else _FIND_OR_CREATE_IN_TRANSACTION,
                                [uuid.uuid4() for _ in missing], missing, [os.urandom(32) for _ in missing])
        if len(rows) < len(missing):  # created meanwhile by another process: not in our snapshot
            rows = await conn.fetch(_BY_SUBJECT, missing)
        for row in rows:
            aead = self._remember(row["subject"], row["key_id"], row["key"]) if cache else AESGCM(row["key"])
            assert aead is not None
            found[row["subject"]] = (row["key_id"], aead)
        if len(found) < len(set(subjects)):
            raise ShreddingError("a subject's key could not be created")
        return found

    async def keys_by_id(
        self, conn: asyncpg.Connection, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, AESGCM | None]:
        """Each key by id; None where it was erased (or never existed)."""
        out: dict[uuid.UUID, AESGCM | None] = {}
        missing: list[uuid.UUID] = []
        for key_id in set(ids):
            ok, aead = self._cached(key_id)
            if ok:
                out[key_id] = aead
            else:
                missing.append(key_id)
        if missing:
            rows = await conn.fetch(_BY_ID, missing)
            cache = not conn.is_in_transaction()
            for row in rows:
                out[row["key_id"]] = (self._remember(None, row["key_id"], row["key"]) if cache
                                      else AESGCM(row["key"]))
            for key_id in missing:
                if key_id not in out:
                    out[key_id] = None
                    if cache:
                        self._by_id[key_id] = (None, 0.0)  # erased keys never come back
        return out

    async def erase(self, conn: asyncpg.Connection, subjects: Sequence[str]) -> list[uuid.UUID]:
        """Delete the subjects' keys (in `conn`'s transaction, if any); their data becomes unreadable.

        Other processes are told by NOTIFY when the transaction commits. Returns the key ids deleted.
        In a transaction this process only stops trusting its cache: the transaction may still
        roll back and keep the keys.
        """
        final = not conn.is_in_transaction()
        async with conn.transaction():  # the keys go and the notices are sent together, or neither
            ids = [r["key_id"] for r in await conn.fetch(_ERASE, list(subjects))]
            for start in range(0, len(ids), _PER_NOTICE):  # a NOTIFY payload is below 8000 bytes
                await conn.execute("SELECT pg_notify($1, $2)", ERASURE_CHANNEL,
                                   ",".join(map(str, ids[start:start + _PER_NOTICE])))
        self.forget(ids, subjects, final=final)
        return ids

    def forget(self, ids: Iterable[uuid.UUID], subjects: Iterable[str] = (), *, final: bool = True) -> None:
        """Drop erased keys from the cache (an erasure here, or one noticed from another process);
        `final`: remember them as erased (the erasure committed), else ask the database again."""
        self._recent.clear()
        for key_id in ids:
            if final:
                self._by_id[key_id] = (None, 0.0)
            else:
                self._by_id.pop(key_id, None)
        for subject in subjects:
            self._by_subject.pop(subject, None)
        gone = {k for k, (a, _) in self._by_id.items() if a is None}
        for subject, (key_id, _) in list(self._by_subject.items()):
            if key_id in gone:
                del self._by_subject[subject]

    def on_notice(self, payload: str) -> None:
        """An erasure NOTIFY from another process."""
        ids = []
        for part in payload.split(","):
            try:
                ids.append(uuid.UUID(part))
            except ValueError:
                continue
        self.forget(ids)

    # -- sealing --------------------------------------------------------------

    async def seal(self, conn: asyncpg.Connection, batch: Sequence[AppendArgs]) -> list[AppendArgs]:
        """The appends with their events' personal values sealed (unchanged where there are none)."""
        subjects = {p.subject for args in batch for p in args.personal if p is not None}
        keys = await self.keys_for(conn, subjects)  # none asked for when there are none
        return [self._seal_args(args, keys) for args in batch]

    def seal_making(self, batch: Sequence[AppendArgs]) -> tuple[list[AppendArgs], NewKeys]:
        """The appends sealed without asking the database: with a subject's cached key, else with a
        new key made here. The caller's statement stores the new keys with the events (migration
        0007) and refuses the appends sealed with the new key of a subject that has one already;
        then `kept` caches the new keys that were stored."""
        now = self._clock()
        new = NewKeys()
        keys: dict[str, tuple[uuid.UUID, AESGCM]] = {}
        for args in batch:
            for personal in args.personal:
                if personal is None or personal.subject in keys:
                    continue
                hit = self._cached_key(personal.subject, now)
                keys[personal.subject] = hit if hit is not None else new.make(personal.subject)
        if new.made:
            for args in batch:
                new.event_keys.extend(new.id_of(p) for p in args.personal)
                new.event_keys.extend([None] * (len(args.types) - len(args.personal)))
        return [self._seal_args(args, keys) for args in batch], new

    def kept(self, new: NewKeys, refused: Iterable[str]) -> None:
        """Cache the new keys of `new` that a committed statement stored: all but the `refused`
        subjects' (those had a key already)."""
        refused = set(refused)
        for subject, (key_id, key, aead) in new.made.items():
            if subject not in refused:
                self._remember(subject, key_id, key, aead)

    def _seal_args(self, args: AppendArgs, keys: dict[str, tuple[uuid.UUID, AESGCM]]) -> AppendArgs:
        if not any(args.personal):
            return args
        data, metadata = list(args.data), list(args.metadata)
        for i, personal in enumerate(args.personal):
            if personal is not None:
                data[i], metadata[i] = seal_event(data[i], metadata[i], personal, *keys[personal.subject])
        return AppendArgs(args.stream, args.category, args.expected_version, args.idempotency_key, args.types,
                          args.schema_versions, data, metadata, [None] * len(data))

    def stored(self, position: int) -> RecordedEvent | None:
        """The event at `position` as stored, if read lately (the log's rows never change: a reader
        need not decode it again); None if not."""
        hit = self._recent.get(position)
        return None if hit is None else hit[0]

    async def open(self, conn: asyncpg.Connection, records: Sequence[RecordedEvent]) -> list[RecordedEvent]:
        """The records (as stored) with their sealed values put back (or shown erased).

        The runners of one process read the same events one after the other: every event read
        is kept (`stored`), and one opened lately is answered without opening it again, until
        the TTL or any erasure. In a transaction the keys of every sealed record are held to its
        end (`_hold`); an event opened there is kept only if its key was found.
        """
        now = self._clock()
        out = list(records)
        sealed = [i for i, record in enumerate(records) if SEALED in record.metadata]
        todo: list[int] = []
        for i in sealed:
            hit = self._recent.get(records[i].position)
            if hit is not None and hit[1] is not None and hit[2] >= now:
                out[i] = hit[1]
            else:
                todo.append(i)
        in_transaction = conn.is_in_transaction()
        keys: dict[uuid.UUID, AESGCM | None] = {}
        if in_transaction and sealed:
            keys = await self._hold(conn, await self.keys_by_id(conn, [_key_of(records[i]) for i in sealed]))
            unopened = set(todo)
            todo = [i for i in sealed if i in unopened or keys.get(_key_of(records[i])) is None]
        elif todo:
            keys = await self.keys_by_id(conn, [_key_of(records[i]) for i in todo])
        for i in todo:
            out[i] = open_event(records[i], keys)
        if self.caches:
            self._keep(records, out, set(todo), in_transaction, now + self._ttl)
        return out

    def _keep(
        self, records: Sequence[RecordedEvent], out: list[RecordedEvent], opened: set[int],
        in_transaction: bool, until: float,
    ) -> None:
        """Keep the records read, as stored and, where just opened, opened (in a transaction only
        with a key found: a key another transaction committed after its snapshot looks erased)."""
        for i, record in enumerate(records):
            if out[i] is record:  # no personal data
                self._recent[record.position] = (record, record, until)
            elif i in opened:
                erased = in_transaction and is_erased(out[i])
                self._recent[record.position] = (record, None if erased else out[i], until)
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    async def _hold(
        self, conn: asyncpg.Connection, keys: dict[uuid.UUID, AESGCM | None]
    ) -> dict[uuid.UUID, AESGCM | None]:
        """The keys, each share-locked to the end of `conn`'s transaction (None where gone).

        A transaction that reads personal data in order to write it elsewhere (a projection's
        batch, a command's decision) holds the keys it opened: an erasure's delete waits for it
        to commit, then scrubs what it wrote; nothing opened before an erasure is written after
        it. A key erased since it was cached is forgotten here."""
        live = [key_id for key_id, aead in keys.items() if aead is not None]
        if not live:
            return keys
        held = {r["key_id"] for r in await conn.fetch(_HOLD, live)}
        gone = [key_id for key_id in live if key_id not in held]
        if gone:
            self.forget(gone)
        return {key_id: (aead if key_id in held else None) for key_id, aead in keys.items()}


def _key_of(record: RecordedEvent) -> uuid.UUID:
    return uuid.UUID(record.metadata[SEALED]["key"])


def seal_event(
    data: dict[str, Any], metadata: dict[str, Any], personal: Personal, key_id: uuid.UUID, aead: AESGCM
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One event's data and metadata with the values at `personal.paths` sealed in one box."""
    values: list[Any] = []
    at: list[list[str | int]] = []
    sealed_data = dict(data)  # copied once: the caller's event stays as it was
    copied = {id(sealed_data)}
    for path in personal.paths:
        name = path[0]
        if len(path) == 1 and isinstance(name, str):  # a top-level field (most are): no walk
            value = data.get(name)
            if value is None:
                continue
            sealed_data[name] = PLACEHOLDER
        else:
            value = _get(data, path)
            if value is None:
                continue
            _put(sealed_data, path, PLACEHOLDER, copied)
        values.append(value)
        at.append(list(path))
    if not values:
        return data, metadata
    data = sealed_data
    nonce = os.urandom(_NONCE)
    box = nonce + aead.encrypt(nonce, jsontext.encode(values), key_id.bytes)
    sealed = {"key": str(key_id), "at": at, "t": "".join(_kind(v) for v in values),
              "box": base64.b64encode(box).decode()}
    return data, {**metadata, SEALED: sealed}


def open_event(record: RecordedEvent, keys: dict[uuid.UUID, AESGCM | None]) -> RecordedEvent:
    """`record` with its sealed values put back, or shown erased when the key is gone."""
    sealed = record.metadata[SEALED]
    key_id = uuid.UUID(sealed["key"])
    aead = keys.get(key_id)
    values: list[Any] | None = None
    if aead is not None:
        box = base64.b64decode(sealed["box"])
        try:
            values = jsontext.loads(aead.decrypt(box[:_NONCE], box[_NONCE:], key_id.bytes))
        except InvalidTag as exc:
            raise ShreddingError(f"the personal data of event {record.position} does not open") from exc
    data, copied = record.data, set[int]()
    for i, (path, kind) in enumerate(zip(sealed["at"], sealed["t"], strict=True)):
        value = values[i] if values is not None else _ERASED[kind]()
        data = _put(data, tuple(path), value, copied)
    metadata = {k: v for k, v in record.metadata.items() if k != SEALED}
    if values is None:
        metadata["erased"] = True
    return dataclasses.replace(record, data=data, metadata=metadata)


def is_erased(record: RecordedEvent) -> bool:
    """Whether `record` (as read) had personal data that is erased."""
    return bool(record.metadata.get("erased"))


_RINGS: weakref.WeakKeyDictionary[asyncpg.Connection, Keyring] = weakref.WeakKeyDictionary()
_UNCACHED = Keyring(ttl=0.0)  # for a connection of no pool of ours: asks the database each time


def _raw(conn: asyncpg.Connection) -> asyncpg.Connection:
    # A pool hands out proxies (not weakly referable); the connection is inside.
    return conn._con if isinstance(conn, asyncpg.pool.PoolConnectionProxy) else conn


def bind(conn: asyncpg.Connection, keyring: Keyring) -> None:
    """Make `keyring` the one used on `conn` (`create_pool` binds one per pool to its connections)."""
    _RINGS[_raw(conn)] = keyring


def keyring_of(conn: asyncpg.Connection) -> Keyring:
    """The keyring of `conn`'s pool (an uncached one for a connection made elsewhere, or for a
    pool's connection already given back: its next statement raises the driver's error)."""
    if isinstance(conn, asyncpg.pool.PoolConnectionProxy) and conn._con is None:
        return _UNCACHED
    return _RINGS.get(_raw(conn), _UNCACHED)


_BY_SUBJECT = "SELECT subject, key_id, key FROM subject_keys WHERE subject = ANY($1::text[])"
_BY_ID = "SELECT key_id, key FROM subject_keys WHERE key_id = ANY($1::uuid[])"
_FIND_OR_CREATE_IN_TRANSACTION = """WITH new AS (
        INSERT INTO subject_keys (key_id, subject, key)
        SELECT k.* FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS k ON CONFLICT (subject) DO NOTHING
        RETURNING subject, key_id, key)
    SELECT subject, key_id, key FROM new
    UNION ALL SELECT subject, key_id, key FROM subject_keys WHERE subject = ANY($2::text[])"""
"""Each subject's key, created where it has none, in one statement. The second SELECT sees the
table as the statement began (without the rows it inserts), so no key is answered twice; a key
another session committed after that is in neither part (the caller asks again)."""
_FIND_OR_CREATE = _FIND_OR_CREATE_IN_TRANSACTION.replace(
    "AS k ON CONFLICT", "AS k, (SELECT set_config('synchronous_commit', 'off', true)) AS lazy ON CONFLICT")
"""`_FIND_OR_CREATE_IN_TRANSACTION` as a transaction of its own that does not wait for its commit
to be flushed to disk (asynchronous commit, this statement only). Safe: a key is used only after
this commit, by commits that come later in the WAL, and a commit's flush covers everything before
it, so no event is durable before its key (a key lost in a crash was used by no durable event).
Group commit's flushes that bring new subjects then wait for one disk flush instead of two."""
_HOLD = "SELECT key_id FROM subject_keys WHERE key_id = ANY($1::uuid[]) FOR KEY SHARE"
_ERASE = "DELETE FROM subject_keys WHERE subject = ANY($1::text[]) RETURNING key_id"
