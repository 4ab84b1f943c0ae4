"""What a token scoped to an organisation node gets of the live stream's changes (gateway.sse)."""

from __future__ import annotations

from gateway.sse import in_view, scoped

SCOPE = frozenset({"SC1", "U1"})


def test_case_changes_reach_the_subtree_that_holds_or_held_the_case() -> None:
    mine = {"topic": "case", "data": {"case_id": "C1", "owner": "SC1", "assigned_to": None}}
    theirs = {"topic": "case", "data": {"case_id": "C2", "owner": "SC2", "assigned_to": None}}
    left = {"topic": "case", "data": {"case_id": "C3", "owner": "XY", "before": {"owner": "SC1"}}}
    assert [in_view(SCOPE, c) for c in (mine, theirs, left)] == [True, False, True]
    assert in_view(None, theirs)


def test_other_topics_reach_a_scoped_caller_as_a_bare_signal() -> None:
    incident = {"topic": "incident", "data": {"incident_id": "I-9", "case_id": "C2"}}
    task = {"topic": "missed_call", "data": {"task_id": "13700000002.1"}}
    for change in (incident, task):
        assert in_view(SCOPE, change)
        assert scoped(SCOPE, change) == {"topic": change["topic"], "data": {}}
        assert scoped(None, change) == change  # the whole organisation sees what it names
    ring = {"topic": "ring", "data": {"agent": "A1", "call_id": "c1"}}
    assert scoped(SCOPE, ring) == ring  # addressed to one agent, not to a level
