"""Sealing and opening one event's personal values (`eventstore/shredding.py`), no database."""

from __future__ import annotations

import base64
import copy
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eventstore import ANY, Checkpoint, NewEvent, Personal, RecordedEvent
from eventstore.memory import MemoryEventStore
from eventstore.shredding import (
    ERASED,
    PLACEHOLDER,
    SEALED,
    Keyring,
    ShreddingError,
    is_erased,
    open_event,
    seal_event,
)

KEY_ID = uuid.UUID("0b7c6a52-7f5c-4c0e-9d39-5d3c2b1a0f11")
AEAD = AESGCM(os.urandom(32))
DATA: dict[str, Any] = {
    "case_id": "C1",
    "caller": {"name": "张三丰", "phone": "13912345678", "tier": "vip"},
    "contacts": [{"phone": "13800000001", "kind": "home"}, {"phone": "13800000002", "kind": "work"}],
    "lat": 34.25,
    "count": 0,
    "raw": {"Body": "井盖丢失", "From": "+8613912345678"},
    "tags": ["a", "b"],
    "description": "",
    "missing": None,
}
PATHS: tuple[tuple[str | int, ...], ...] = (
    ("caller", "name"), ("caller", "phone"), ("contacts", 1, "phone"), ("lat",), ("count",),
    ("raw",), ("tags",), ("description",), ("missing",), ("absent", "deeper"),
)
META = {"actor": "A001", "idempotency_key": "k1"}


def _sealed() -> tuple[dict[str, Any], dict[str, Any]]:
    return seal_event(DATA, META, Personal("phone:13912345678", PATHS), KEY_ID, AEAD)


def _record(data: dict[str, Any], metadata: dict[str, Any]) -> RecordedEvent:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    return RecordedEvent(7, "case-C1", 0, "CaseRegistered", 1, data, metadata, at)


def test_sealing_replaces_each_present_value_and_leaves_everything_else() -> None:
    data, metadata = _sealed()
    assert data == {
        "case_id": "C1",
        "caller": {"name": PLACEHOLDER, "phone": PLACEHOLDER, "tier": "vip"},
        "contacts": [{"phone": "13800000001", "kind": "home"}, {"phone": PLACEHOLDER, "kind": "work"}],
        "lat": PLACEHOLDER,
        "count": PLACEHOLDER,
        "raw": PLACEHOLDER,
        "tags": PLACEHOLDER,
        "description": PLACEHOLDER,
        "missing": None,  # nothing to seal: absent and null values are left as they are
    }
    assert {k: v for k, v in metadata.items() if k != SEALED} == META
    box = metadata[SEALED]
    assert box["key"] == str(KEY_ID)
    assert box["at"] == [["caller", "name"], ["caller", "phone"], ["contacts", 1, "phone"], ["lat"],
                         ["count"], ["raw"], ["tags"], ["description"]]
    assert box["t"] == "sssnnols"  # the kinds: text, number, object, list (what an erasure shows)
    stored = json.dumps([data, metadata], ensure_ascii=False)
    for secret in ("张三丰", "13912345678", "13800000002", "34.25", "井盖丢失"):
        assert secret not in stored


def test_sealing_does_not_touch_its_input() -> None:
    before_data, before_meta = copy.deepcopy(DATA), copy.deepcopy(META)
    data, metadata = _sealed()
    assert before_data == DATA and before_meta == META
    opened = open_event(_record(data, metadata), {KEY_ID: AEAD})
    assert data["caller"]["name"] == PLACEHOLDER and SEALED in metadata  # opening copies too
    assert opened.data == DATA


def test_an_event_without_personal_values_is_stored_unchanged() -> None:
    data, metadata = seal_event(DATA, META, Personal("phone:1", (("missing",), ("nope",))), KEY_ID, AEAD)
    assert data is DATA and metadata is META


def test_a_field_absent_at_the_top_does_not_leave_the_next_ones_in_the_clear() -> None:
    """Bug: sealing stopped at the first absent top-level field (the phone after it stored as is)."""
    paths = (("nickname",), ("phone",), ("caller", "name"), ("gone",), ("address",))
    data, metadata = seal_event(DATA | {"phone": "13912345678", "address": "人民路1号"}, META,
                                Personal("phone:13912345678", paths), KEY_ID, AEAD)
    assert (data["phone"], data["caller"]["name"], data["address"]) == (PLACEHOLDER,) * 3
    assert metadata[SEALED]["at"] == [["phone"], ["caller", "name"], ["address"]]


def test_a_path_that_does_not_fit_the_datas_shape_seals_nothing_there() -> None:
    """A declared path meets data of another shape (an index past a list's end, a name into a list,
    an index into a text): nothing there is sealed and nothing fails; the rest is sealed. Bugs: an
    IndexError or TypeError (the append refused), one character of a text sealed."""
    data = {"contacts": [{"phone": "13800000001"}], "raw": "井盖丢失", "phone": "13912345678"}
    paths = (("contacts", 1, "phone"), ("contacts", "phone"), ("raw", 0), ("phone",))
    sealed, metadata = seal_event(data, META, Personal("phone:13912345678", paths), KEY_ID, AEAD)
    assert sealed == {"contacts": [{"phone": "13800000001"}], "raw": "井盖丢失", "phone": PLACEHOLDER}
    assert metadata[SEALED]["at"] == [["phone"]]


def test_opening_puts_every_value_back_and_drops_the_box() -> None:
    opened = open_event(_record(*_sealed()), {KEY_ID: AEAD})
    assert opened.data == DATA
    assert opened.metadata == META
    assert not is_erased(opened)
    assert (opened.position, opened.stream, opened.type) == (7, "case-C1", "CaseRegistered")


def test_without_its_key_an_event_reads_erased_by_kind_and_keeps_the_rest() -> None:
    sealed = _record(*_sealed())
    for keys in ({KEY_ID: None}, {}):
        erased = open_event(sealed, keys)
        assert erased.data == {
            "case_id": "C1",
            "caller": {"name": ERASED, "phone": ERASED, "tier": "vip"},
            "contacts": [{"phone": "13800000001", "kind": "home"}, {"phone": ERASED, "kind": "work"}],
            "lat": None, "count": None, "raw": {}, "tags": [], "description": ERASED, "missing": None,
        }
        assert erased.metadata == {**META, "erased": True}
        assert is_erased(erased)
        assert erased.recorded_at == sealed.recorded_at


def _with_box(metadata: dict[str, Any], box: bytes) -> dict[str, Any]:
    return {**metadata, SEALED: {**metadata[SEALED], "box": base64.b64encode(box).decode()}}


def test_a_tampered_box_or_a_wrong_key_does_not_open() -> None:
    data, metadata = _sealed()
    box = bytearray(base64.b64decode(metadata[SEALED]["box"]))
    box[-1] ^= 1  # the tag
    with pytest.raises(ShreddingError):
        open_event(_record(data, _with_box(metadata, bytes(box))), {KEY_ID: AEAD})
    box = bytearray(base64.b64decode(metadata[SEALED]["box"]))
    box[14] ^= 1  # the ciphertext
    with pytest.raises(ShreddingError):
        open_event(_record(data, _with_box(metadata, bytes(box))), {KEY_ID: AEAD})
    with pytest.raises(ShreddingError):
        open_event(_record(data, metadata), {KEY_ID: AESGCM(os.urandom(32))})


def test_a_box_moved_to_another_key_id_does_not_open() -> None:
    """The key id is authenticated: a box relabelled to another subject's key fails even when
    that id maps to the same key material."""
    data, metadata = _sealed()
    other = uuid.uuid4()
    moved = {**metadata, SEALED: {**metadata[SEALED], "key": str(other)}}
    with pytest.raises(ShreddingError):
        open_event(_record(data, moved), {other: AEAD})


def test_each_sealing_uses_a_fresh_nonce() -> None:
    assert _sealed()[1][SEALED]["box"] != _sealed()[1][SEALED]["box"]


async def test_the_memory_store_seals_opens_and_erases() -> None:
    store = MemoryEventStore()
    personal = Personal("phone:13912345678", (("caller", "name"), ("lat",)))
    other = Personal("phone:13800000002", (("caller", "name"),))
    await store.append("case-C1", [NewEvent("CaseRegistered", DATA, personal=personal)], ANY)
    await store.append("case-C2", [NewEvent("CaseRegistered", DATA, personal=other)], ANY)
    assert store._log[0].data["caller"]["name"] == PLACEHOLDER  # as stored
    [read] = await store.read_stream("case-C1")
    assert read.data == DATA and SEALED not in read.metadata
    assert len(store.erase(["phone:13912345678"])) == 1
    [erased] = await store.read_stream("case-C1")
    assert (erased.data["caller"]["name"], erased.data["lat"], erased.data["case_id"]) == (ERASED, None, "C1")
    assert [e.data for _, e in await store.read_all(Checkpoint())] == [erased.data, DATA]


def test_a_cached_key_expires_and_an_erased_one_is_forgotten_at_once() -> None:
    now = [0.0]
    ring = Keyring(ttl=10.0, clock=lambda: now[0])
    ring._remember("phone:1", KEY_ID, os.urandom(32))
    assert ring._cached(KEY_ID)[1] is not None
    now[0] = 11.0
    assert ring._cached(KEY_ID) == (False, None)  # ask the database again
    now[0] = 0.0
    ring.on_notice(f"not-a-uuid,{KEY_ID}")
    assert ring._cached(KEY_ID) == (True, None)
    assert "phone:1" not in ring._by_subject
