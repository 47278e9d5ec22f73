"""``manage.py showschedules``: the schedules in plain words and their next run times in
their time zone, across Paris's clock changes (from the table, and as declared)."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from salvador_django import Schedule, Workflow
from salvador_django.models import Schedule as ScheduleRow
from salvador_django.models import Task
from salvador_django.scheduling import sync_schedules
from tests.factories import TaskFactory


def show(*args: str) -> list[str]:
    out = StringIO()
    call_command("showschedules", *args, stdout=out)
    return out.getvalue().splitlines()


@pytest.fixture
def nightly(workflow_names) -> Workflow:
    """A workflow that runs at 02:30 in Paris, in the hour the clocks skip in March."""
    workflow_names.append("show-nightly")
    workflow = Workflow(
        "show-nightly", schedules=[Schedule("30 2 * * *", timezone="Europe/Paris", name="nightly")]
    )
    workflow.step("only", lambda task: None)
    return workflow


def test_declared_lists_the_code_s_schedules_across_spring_forward_without_the_database(
    nightly,
):
    lines = show("--declared", "--after", "2026-03-27T12:00:00+01:00", "--count", "3")
    assert lines == [
        "nightly  (workflow show-nightly)",
        "  30 2 * * * — At 02:30 (Europe/Paris)",
        "  next runs (Europe/Paris):",
        "    2026-03-28 02:30:00 CET +0100",
        "    2026-03-29 03:00:00 CEST +0200",  # 02:30 does not exist: it runs at the jump
        "    2026-03-30 02:30:00 CEST +0200",
    ]


def test_fall_back_runs_once_and_five_run_times_are_listed_by_default(nightly):
    lines = show("--declared", "--after", "2026-10-23T12:00:00")  # TIME_ZONE is UTC
    assert lines[3:] == [
        "    2026-10-24 02:30:00 CEST +0200",
        "    2026-10-25 02:30:00 CEST +0200",  # 02:30 happens twice: it runs at the first
        "    2026-10-26 02:30:00 CET +0100",
        "    2026-10-27 02:30:00 CET +0100",
        "    2026-10-28 02:30:00 CET +0100",
    ]


def test_nothing_declared_says_so():
    assert show("--declared") == ["No schedule is declared."]


@pytest.mark.parametrize("bad", [["--count", "-1"], ["--count", "x"], ["--after", "tomorrow"]])
def test_bad_options_are_refused(bad):
    with pytest.raises(CommandError):
        call_command("showschedules", "--declared", *bad)


def test_an_empty_table_says_so(backend):
    assert show() == ["No schedule in the table (workers copy the declared ones when they start)."]


def test_the_table_lists_paused_removed_and_last_runs_with_their_task_s_status(
    backend, nightly, monkeypatch
):
    monkeypatch.setattr(
        "salvador_django.scheduling.timezone.now", lambda: datetime(2026, 3, 27, 11, tzinfo=UTC)
    )
    sync_schedules(backend)
    monkeypatch.undo()
    task = TaskFactory(completed=True)
    ScheduleRow.objects.using(backend).filter(name="nightly").update(
        last_run_at=datetime(2026, 3, 27, 1, 30, tzinfo=UTC), last_task_id=task.pk
    )
    pruned = TaskFactory(completed=True)
    ScheduleRow.objects.using(backend).create(
        name="gone", workflow="old", cron="0 4 * * *", timezone="UTC", active=False,
        next_run_at=timezone.now(), last_run_at=datetime(2026, 1, 2, 4, tzinfo=UTC),
        last_task_id=pruned.pk,
    )  # fmt: skip
    Task.objects.using(backend).filter(pk=pruned.pk).delete()
    lines = show("--after", "2026-03-27T12:00:00+01:00", "--count", "2")
    assert lines == [
        "gone  (workflow old)",
        "  0 4 * * * — At 04:00 (UTC)",
        "  removed from the code: it no longer runs",
        f"  last run: 2026-01-02 04:00:00 UTC +0000, task {pruned.pk} (deleted)",
        "",
        "nightly  (workflow show-nightly)",
        "  30 2 * * * — At 02:30 (Europe/Paris)",
        f"  last run: 2026-03-27 02:30:00 CET +0100, task {task.pk} (completed)",
        "  next runs (Europe/Paris):",
        "    2026-03-28 02:30:00 CET +0100",
        "    2026-03-29 03:00:00 CEST +0200",
    ]
    ScheduleRow.objects.using(backend).filter(name="nightly").update(paused=True)
    assert show("--after", "2026-03-27T12:00:00+01:00", "--count", "1")[-4:] == [
        "  paused",
        f"  last run: 2026-03-27 02:30:00 CET +0100, task {task.pk} (completed)",
        "  next runs once resumed (Europe/Paris):",
        "    2026-03-28 02:30:00 CET +0100",
    ]


def test_a_schedule_no_worker_ticked_is_shown_overdue(backend, nightly, monkeypatch):
    monkeypatch.setattr(
        "salvador_django.scheduling.timezone.now", lambda: datetime(2026, 3, 27, 11, tzinfo=UTC)
    )
    sync_schedules(backend)
    monkeypatch.undo()
    lines = show("--after", "2026-03-30T12:00:00+02:00", "--count", "0")
    assert lines == [
        "nightly  (workflow show-nightly)",
        "  30 2 * * * — At 02:30 (Europe/Paris)",
        "  due since 2026-03-28 02:30:00 CET +0100 (no worker has ticked it yet)",
    ]
