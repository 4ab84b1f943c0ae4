"""Records as the audit API shows them, stream names and an append's arguments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from eventstore import ANY, NewEvent, RecordedEvent
from eventstore.errors import InvalidStreamName
from eventstore.records import category_of, check_append, check_stream_name


def test_a_recorded_event_as_the_audit_api_answers_it() -> None:
    at = datetime(2026, 11, 23, 8, 0, 1, 250000, tzinfo=UTC)
    record = RecordedEvent(7, "case-C1", 2, "CaseDispatched", 3, {"to": "U001"}, {"actor": "a:1"}, at)
    assert record.category == "case"
    assert record.as_json() == {
        "position": 7, "stream": "case-C1", "version": 2, "type": "CaseDispatched", "schema_version": 3,
        "data": {"to": "U001"}, "metadata": {"actor": "a:1"},
        "recorded_at": "2026-11-23T08:00:01.250000+00:00",
    }


@pytest.mark.parametrize("stream", ["case-1", "call-a.b:c-d_e", "missed_calls-X9", "a-" + "x" * 198])
def test_good_stream_names(stream: str) -> None:
    assert check_stream_name(stream) == stream
    assert category_of(stream) == stream.split("-", 1)[0]


@pytest.mark.parametrize("stream", ["case", "Case-1", "1case-1", "case-", "-1", "case-1 2", "a-" + "x" * 199])
def test_bad_stream_names(stream: str) -> None:
    with pytest.raises(InvalidStreamName, match="is not <category>-<id>"):
        check_stream_name(stream)


def test_an_append_needs_events_and_a_known_expected_version() -> None:
    check_append("case-1", [NewEvent("E", {})], ANY)
    with pytest.raises(ValueError, match="at least one event"):
        check_append("case-1", [], ANY)
    with pytest.raises(ValueError, match=r"expected version -4 is not a version"):
        check_append("case-1", [NewEvent("E", {})], ANY - 1)
    with pytest.raises(InvalidStreamName):
        check_append("nope", [NewEvent("E", {})], ANY)
