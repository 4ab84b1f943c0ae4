"""Retransmission of SIA DC-09 frames WITHOUT a timestamp (plain frames).

CONTRACT: such a frame is identified by account + sequence + a hash of its
content, and counts as a repeat only within 10 minutes of the first - also
across the boundary of the 10-minute buckets the key is built on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from my_dc09_spt.msg.dc05_msg import dc05_msg
from my_dc09_spt.msg.dc09_msg import dc09_msg

from channels import sia
from channels.alarm import command_from_frame
from channels.contact_id import decode
from dispatch.core.clock import FakeClock
from dispatch.elderly.alarms import AlarmOutcome, receive_alarm
from dispatch.intake.contact import REPEAT_WINDOW
from eventstore.memory import MemoryEventStore

BOUNDARY = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
"""A multiple of 10 minutes since the epoch: where one key bucket ends and the next begins."""


def plain_frame(seq: int = 7, zone: int = 1) -> bytes:
    """A periodic-test Contact ID frame with no timestamp (unencrypted)."""
    payload = dc05_msg.dc05event("1234", {"code": 602, "q": 1, "zone": zone})
    return dc09_msg("1234", line=0).dc09block(seq, "ADM-CID", payload).encode()


async def receive(store: MemoryEventStore, clock: FakeClock, raw: bytes) -> AlarmOutcome:
    """What the receiver does with a frame that passed its checks (the handler decides the repeat)."""
    frame = sia.parse_frame(raw, {})
    assert frame.timestamp is None
    cmd = command_from_frame(frame, decode(frame.token, frame.data), "tcp", clock.now())
    return await receive_alarm(cmd, store=store, clock=clock, services=None)


async def twice(first_at: datetime, again_at: datetime, raw: bytes, raw_again: bytes | None = None
                ) -> tuple[AlarmOutcome, AlarmOutcome]:
    clock = FakeClock(first_at)
    store = MemoryEventStore(clock.now)
    first = await receive(store, clock, raw)
    clock.set(again_at)
    return first, await receive(store, clock, raw_again or raw)


def test_the_boundary_is_a_bucket_boundary() -> None:
    assert BOUNDARY.timestamp() % REPEAT_WINDOW.total_seconds() == 0
    assert timedelta(minutes=10) == REPEAT_WINDOW


async def test_a_repeat_within_the_bucket_is_the_same_alarm() -> None:
    first, again = await twice(BOUNDARY + timedelta(minutes=1), BOUNDARY + timedelta(minutes=3),
                               plain_frame())
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.alarm_id == first.alarm_id


async def test_a_repeat_across_the_bucket_boundary_is_the_same_alarm() -> None:
    first, again = await twice(BOUNDARY - timedelta(seconds=30), BOUNDARY + timedelta(seconds=30),
                               plain_frame())
    assert again.duplicate and again.alarm_id == first.alarm_id


async def test_a_repeat_exactly_10_minutes_later_is_still_the_same_alarm() -> None:
    start = BOUNDARY - timedelta(minutes=1)
    first, again = await twice(start, start + REPEAT_WINDOW, plain_frame())
    assert again.duplicate and again.alarm_id == first.alarm_id


async def test_the_same_frame_more_than_10_minutes_later_is_a_new_alarm() -> None:
    start = BOUNDARY - timedelta(minutes=1)
    first, again = await twice(start, start + REPEAT_WINDOW + timedelta(seconds=1), plain_frame())
    assert not again.duplicate and again.alarm_id != first.alarm_id


async def test_the_same_frame_two_buckets_later_is_a_new_alarm() -> None:
    first, again = await twice(BOUNDARY + timedelta(minutes=1), BOUNDARY + timedelta(minutes=21),
                               plain_frame())
    assert not again.duplicate and again.alarm_id != first.alarm_id


async def test_same_sequence_with_other_content_is_another_alarm() -> None:
    at = BOUNDARY + timedelta(minutes=1)
    first, other = await twice(at, at, plain_frame(zone=1), plain_frame(zone=2))
    assert not other.duplicate and other.alarm_id != first.alarm_id
    _, next_seq = await twice(at, at, plain_frame(seq=7), plain_frame(seq=8))
    assert not next_seq.duplicate
