"""Shared set-up for the alarm tests: a registered elder and read-model helpers."""

from __future__ import annotations

from typing import Any

from dispatch.gis.reference import RecordReference, ReferenceProjection, parse_feature
from eventstore.subscriptions import ProjectionRunner
from tests.conftest import stored_events

ELDER_ACCOUNT = "E0001"
CONTACTS = [
    {"role": "family", "name": "许敏兰", "phone": "16666767796"},
    {"role": "doctor", "name": "钟红勇", "phone": "19590093254"},
    {"role": "liaison", "name": "王社区", "phone": "13800138000"},
]
HOME = (34.375418, 108.660578)


async def register_elder(services: Any, account: str = ELDER_ACCOUNT, elder_id: str = "ELD00001") -> None:
    """Load one elder through the reference loader's command and project it."""
    feature = {
        "type": "Feature",
        "properties": {"kind": "elder", "id": elder_id, "name": "曹英霞", "phone": "18984796809",
                       "devices": [account], "contacts": CONTACTS, "district": "610402",
                       "address": "秦都区建设路195号", "conditions": ["慢阻肺"]},
        "geometry": {"type": "Point", "coordinates": [HOME[1], HOME[0]]},
    }
    await services.bus.handle(RecordReference(parse_feature(feature)))
    await ProjectionRunner(services.store, ReferenceProjection()).run_until_caught_up()


async def outbox(services: Any, case_id: str) -> list[dict[str, Any]]:
    """The notification outbox rows of a case."""
    async with services.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT to_addr, channel, body, dedup_key, lane FROM notification_outbox WHERE case_id = $1 "
            "ORDER BY to_addr", case_id)
    return [dict(r) for r in rows]


async def events_of(services: Any, event_type: str) -> list[Any]:
    """Every stored event of a type (small test databases only)."""
    events = await stored_events(services.pool, "type = $1", event_type)
    return [{"stream": e.stream, "data": e.data, "metadata": e.metadata} for e in events]
