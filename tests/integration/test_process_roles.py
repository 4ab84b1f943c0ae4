"""`INTAKE_ROLE` splits listeners from projection workers; `all` runs both."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.bootstrap import background_tasks
from gateway.settings import SettingsError, from_env


def names(services: Any, role: str) -> set[str]:
    services.settings = dataclasses.replace(
        services.settings, process=dataclasses.replace(services.settings.process, role=role))
    return {getattr(task, "__qualname__", "") for task in background_tasks(services)}


async def test_roles_divide_the_background_work(services: Any) -> None:
    original = services.settings
    try:
        gateway, worker, everything = (names(services, r) for r in ("gateway", "worker", "all"))
    finally:
        services.settings = original
    assert "ReferenceFollower.run" in gateway
    assert "ProjectionRunner.run" not in gateway
    assert "ReactorRunner.run" not in gateway
    assert {"ProjectionRunner.run", "ReactorRunner.run", "TimerWorker.run"} <= worker
    assert "ReferenceFollower.run" not in worker
    assert everything == gateway | worker


def test_unknown_role_is_a_configuration_error() -> None:
    with pytest.raises(SettingsError, match="INTAKE_ROLE"):
        from_env({"INTAKE_ROLE": "everything"})


async def test_database_sessions_are_named_by_role(settings: Any) -> None:
    from gateway.bootstrap import build_services, close_services

    wired = await build_services(dataclasses.replace(
        settings, process=dataclasses.replace(settings.process, role="worker")))
    try:
        async with wired.pool.acquire() as conn:
            names = await conn.fetch(
                "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = current_database()")
    finally:
        await close_services(wired)
    # An operator tells the gateway's sessions from the worker's in pg_stat_activity.
    assert {r["application_name"] for r in names} == {"intake-worker"}


async def test_only_a_process_that_runs_the_runners_reads_the_log_once_for_all(settings: Any) -> None:
    from gateway.bootstrap import build_services, close_services

    shared = {}
    for role in ("gateway", "worker", "all"):
        wired = await build_services(dataclasses.replace(
            settings, process=dataclasses.replace(settings.process, role=role)))
        shared[role] = wired.store.tail is not None
        await close_services(wired)
    # A gateway's reader or two (the provider index) read their categories themselves: a tail of
    # the whole log would decode every SMS of a storm for them.
    assert shared == {"gateway": False, "worker": True, "all": True}
