"""Schedules: synced from the code, one task per tick, DST, catch-up (SQLite and PostgreSQL).

The tick clock is moved (``tick_schedules(now=...)``), never waited for.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connections

from salvador_django import Schedule, Workflow
from salvador_django.models import Schedule as ScheduleRow
from salvador_django.models import Task
from salvador_django.scheduling import (
    pause_schedule,
    resume_schedule,
    run_schedule_now,
    sync_schedules,
    tick_schedules,
)

PARIS = ZoneInfo("Europe/Paris")


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in Paris."""
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


@pytest.fixture
def scheduled(workflow_names):
    """Define a one-step workflow with ``schedules``; unregistered after the test."""

    def define(name: str, *schedules: Schedule) -> Workflow:
        workflow = Workflow(name, schedules=schedules)
        workflow_names.append(name)
        workflow.step("only", lambda task: task.meta["scheduled_for"])
        return workflow

    return define


def row(backend: str, name: str) -> ScheduleRow:
    return ScheduleRow.objects.using(backend).get(name=name)


def tasks_of(backend: str, workflow: str) -> list[Task]:
    return list(Task.objects.using(backend).filter(workflow=workflow).order_by("created_at"))


def sync_at(backend: str, monkeypatch, moment: datetime) -> None:
    """Sync as if the workers started at ``moment``."""
    sync_schedules(backend, now=moment)


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_sync_adds_keeps_updates_and_disables_schedules(backend, scheduled, monkeypatch):
    scheduled("nightly", Schedule("0 3 * * *", timezone="Europe/Paris", name="nightly-3"))
    sync_at(backend, monkeypatch, at(2026, 6, 1, 12))
    first = row(backend, "nightly-3")
    assert first.next_run_at == at(2026, 6, 2, 3)
    assert (first.workflow, first.cron, first.timezone, first.active) == (
        "nightly", "0 3 * * *", "Europe/Paris", True,
    )  # fmt: skip

    again = sync_schedules(backend)  # a second worker starts: nothing changes
    assert (again.added, again.changed, again.disabled) == ([], [], [])
    assert row(backend, "nightly-3").next_run_at == first.next_run_at
    assert ScheduleRow.objects.using(backend).count() == 1

    from salvador_django.registry import registry

    registry.unregister("nightly")  # a deploy changes the expression
    scheduled("nightly", Schedule("0 4 * * *", timezone="Europe/Paris", name="nightly-3"))
    sync_at(backend, monkeypatch, at(2026, 6, 1, 13))
    assert row(backend, "nightly-3").next_run_at == at(2026, 6, 2, 4)  # from its next tick

    registry.unregister("nightly")  # and then removes it
    result = sync_schedules(backend)
    assert result.disabled == ["nightly-3"]
    assert row(backend, "nightly-3").active is False
    assert tick_schedules(backend, now=at(2026, 6, 3, 5)) == []  # a removed one never ticks


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_tick_submits_one_task_with_its_key_and_scheduled_time(backend, scheduled, monkeypatch):
    scheduled("report", Schedule("0 3 * * *", name="report-daily", body={"kind": "daily"}))
    sync_at(backend, monkeypatch, datetime(2026, 6, 1, 12, tzinfo=UTC))
    assert tick_schedules(backend, now=datetime(2026, 6, 2, 2, 59, 59, tzinfo=UTC)) == []
    [task] = tick_schedules(backend, now=datetime(2026, 6, 2, 3, 0, 0, 300000, tzinfo=UTC))
    assert task.idempotency_key == "schedule:report-daily:2026-06-02T03:00:00Z"
    assert task.meta == {"scheduled_for": "2026-06-02T03:00:00Z"}
    assert task.body == {"kind": "daily"}
    assert tick_schedules(backend, now=datetime(2026, 6, 2, 3, 0, 1, tzinfo=UTC)) == []
    schedule = row(backend, "report-daily")
    assert schedule.next_run_at == datetime(2026, 6, 3, 3, tzinfo=UTC)
    assert schedule.last_run_at == datetime(2026, 6, 2, 3, tzinfo=UTC)
    assert schedule.last_task_id == task.id


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_workers_ticking_at_once_submit_one_task_per_tick(backend, scheduled, monkeypatch):
    if connections[backend].vendor == "sqlite":
        pytest.skip("on SQLite the tick's writes are serialised by its one write lock")
    scheduled("busy", Schedule(every=timedelta(seconds=1), name="busy-1s"))
    sync_at(backend, monkeypatch, datetime(2026, 6, 1, 12, tzinfo=UTC))
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def tick(second: int) -> None:
        try:
            start.wait()
            tick_schedules(backend, now=datetime(2026, 6, 1, 12, 0, second, tzinfo=UTC))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections[backend].close()

    for second in range(1, 6):
        threads = [threading.Thread(target=tick, args=(second,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        start.reset()
    assert errors == []
    keys = [task.idempotency_key for task in tasks_of(backend, "busy")]
    assert keys == [f"schedule:busy-1s:2026-06-01T12:00:0{s}Z" for s in range(1, 6)]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_dst_days_in_paris_run_a_daily_0230_tick_once(backend, scheduled, monkeypatch):
    scheduled("dst", Schedule("30 2 * * *", timezone="Europe/Paris", name="dst-0230"))
    sync_at(backend, monkeypatch, at(2026, 3, 28, 12))
    ran: list[str] = []
    moment = at(2026, 3, 28, 12)
    while moment < at(2026, 3, 31, 12):  # spring forward on 29 March: 02:30 does not exist
        ran += [t.meta["scheduled_for"] for t in tick_schedules(backend, now=moment)]
        moment += timedelta(minutes=10)
    # On the 29th at 03:00 CEST, when the clocks jump; then 02:30 CEST.
    assert ran == ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"]

    sync_at(backend, monkeypatch, at(2026, 10, 24, 12))
    ScheduleRow.objects.using(backend).filter(name="dst-0230").update(
        next_run_at=at(2026, 10, 25, 2, 30)
    )
    ran = []
    moment = at(2026, 10, 24, 23)
    while moment < datetime(2026, 10, 25, 6, tzinfo=UTC):  # falls back: 02:00-03:00 twice
        ran += [t.meta["scheduled_for"] for t in tick_schedules(backend, now=moment)]
        moment += timedelta(minutes=10)
    assert ran == ["2026-10-25T00:30:00Z"]  # 02:30 CEST, not again at 02:30 CET


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [("latest", ["16:00"]), ("all", ["13:00", "14:00", "15:00", "16:00"]), ("none", [])],
)
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_missed_ticks_run_as_catch_up_says(backend, scheduled, monkeypatch, catch_up, expected):
    scheduled("hourly", Schedule("0 * * * *", name="hourly", catch_up=catch_up))
    sync_at(backend, monkeypatch, datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC))
    # The workers were down from 12:00:30 until 16:30.
    tasks = tick_schedules(backend, now=datetime(2026, 6, 1, 16, 30, tzinfo=UTC))
    assert [t.meta["scheduled_for"][11:16] for t in tasks] == expected
    assert row(backend, "hourly").next_run_at == datetime(2026, 6, 1, 17, tzinfo=UTC)
    on_time = tick_schedules(backend, now=datetime(2026, 6, 1, 17, 0, 20, tzinfo=UTC))
    assert [t.meta["scheduled_for"][11:16] for t in on_time] == ["17:00"]  # every mode


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_catch_up_all_is_bounded_by_max_catch_up(backend, scheduled, monkeypatch, settings, caplog):
    settings.SALVADOR = {**settings.SALVADOR, "MAX_CATCH_UP": 3}
    scheduled("often", Schedule(every=timedelta(seconds=10), name="often", catch_up="all"))
    sync_at(backend, monkeypatch, datetime(2026, 6, 1, 12, tzinfo=UTC))
    with caplog.at_level(logging.WARNING, logger="salvador_django"):
        tasks = tick_schedules(backend, now=datetime(2026, 6, 1, 13, tzinfo=UTC))
    assert [t.meta["scheduled_for"] for t in tasks] == [
        "2026-06-01T12:59:40Z", "2026-06-01T12:59:50Z", "2026-06-01T13:00:00Z",
    ]  # fmt: skip
    assert "missed more than 3 ticks" in caplog.text


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_paused_schedule_does_not_tick_and_run_now_submits_one(backend, scheduled, monkeypatch):
    scheduled("paused", Schedule(every=timedelta(minutes=1), name="paused-1m"))
    sync_at(backend, monkeypatch, datetime(2026, 6, 1, 12, tzinfo=UTC))
    assert pause_schedule(row(backend, "paused-1m"), backend) is True
    assert pause_schedule(row(backend, "paused-1m"), backend) is False  # paused already
    assert tick_schedules(backend, now=datetime(2026, 6, 1, 12, 5, tzinfo=UTC)) == []
    task = run_schedule_now(row(backend, "paused-1m"), backend)
    assert task.idempotency_key.startswith("schedule:paused-1m:now:")
    assert row(backend, "paused-1m").last_task_id == task.id
    assert len(tasks_of(backend, "paused")) == 1
    assert resume_schedule(row(backend, "paused-1m"), backend) is True
    assert resume_schedule(row(backend, "paused-1m"), backend) is False  # not paused
    resumed = row(backend, "paused-1m")
    assert resumed.next_run_at > datetime.now(UTC)  # the ticks missed while paused: none run
    assert resumed.next_run_at - datetime.now(UTC) <= timedelta(minutes=1)


@pytest.mark.django_db(databases="__all__")
def test_a_user_s_test_ticks_a_schedule_by_moving_the_clock(backend, scheduled):
    from salvador_django.testing import run_until_idle
    from salvador_django.testing import tick_schedules as tick

    scheduled("weekly", Schedule("0 9 * * 1", timezone="Europe/Paris", name="monday-9"))
    monday = datetime.now(PARIS).replace(hour=9, minute=0, second=0, microsecond=0)
    monday += timedelta(days=(7 - monday.weekday()) % 7 or 7)  # the next Monday, 09:00
    assert tick(monday - timedelta(seconds=1)) == []
    [task] = tick(monday)
    run_until_idle()
    task.refresh_from_db()
    assert task.result == task.meta["scheduled_for"]
    assert datetime.fromisoformat(task.result) == monday
    with pytest.raises(ValueError, match="timezone-aware"):
        tick(datetime(2026, 6, 1, 9))


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_a_tick_that_cannot_submit_is_skipped_and_logged_once(
    backend, scheduled, monkeypatch, settings, caplog
):
    scheduled("big", Schedule(every=timedelta(minutes=1), name="big-body", body={"x": "y" * 100}))
    sync_at(backend, monkeypatch, datetime(2026, 6, 1, 12, tzinfo=UTC))
    settings.SALVADOR = {**settings.SALVADOR, "MAX_BODY_BYTES": 50}
    with caplog.at_level(logging.ERROR, logger="salvador_django"):
        assert tick_schedules(backend, now=datetime(2026, 6, 1, 12, 1, 5, tzinfo=UTC)) == []
        assert tick_schedules(backend, now=datetime(2026, 6, 1, 12, 1, 6, tzinfo=UTC)) == []
    assert caplog.text.count("schedule 'big-body' cannot tick, tick skipped") == 1
    assert row(backend, "big-body").next_run_at == datetime(2026, 6, 1, 12, 2, tzinfo=UTC)
    settings.SALVADOR = {**settings.SALVADOR, "MAX_BODY_BYTES": 1_048_576}
    [task] = tick_schedules(backend, now=datetime(2026, 6, 1, 12, 2, tzinfo=UTC))
    assert task.meta["scheduled_for"] == "2026-06-01T12:02:00Z"
