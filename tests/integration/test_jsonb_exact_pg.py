"""Events keep every value exactly through real PostgreSQL's jsonb (binary format both ways)."""

from __future__ import annotations

from eventstore import Checkpoint, NewEvent
from eventstore.postgres import PostgresEventStore

DATA = {"raw": {"MsgId": 12345678901234567890123, "CreateTime": 1733472000, "rate": 0.1,
                "Content": "停电了", "nested": [{"big": -(10**25)}, None, True]}}


async def test_big_integers_floats_and_chinese_come_back_as_they_went_in(
        pg_store: PostgresEventStore) -> None:
    await pg_store.append("sms-exact", [NewEvent("SmsReceived", DATA, 1, {"k": 2**64})], -1)
    await pg_store.append("sms-exact", [NewEvent("SmsReceived", {"n": 1}, 1, {})], 0)
    (first, second) = await pg_store.read_stream("sms-exact")
    assert first.data == DATA and first.metadata["k"] == 2**64
    assert isinstance(first.data["raw"]["MsgId"], int) and second.data == {"n": 1}
    batch = await pg_store.read_batch(Checkpoint(), limit=10)
    assert [e.data for _, e in batch.events if e.stream == "sms-exact"] == [DATA, {"n": 1}]
