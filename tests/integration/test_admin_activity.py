"""The overview's charts of the last 24 hours and its stuck panel, through the test
client, on both databases."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from salvador_django.admin import stuck
from salvador_django.admin.charts import hour_label
from salvador_django.admin.durations import format_duration
from salvador_django.histogram import bucket, middle
from salvador_django.models import Task
from salvador_django.rollup import HOUR, hour_of, roll_up
from salvador_django.status import StepRunStatus, TaskStatus
from tests.factories import TaskFactory, ended_task

OVERVIEW_URL = "/admin/salvador/overview/"
COMPLETED, FAILED = StepRunStatus.COMPLETED, StepRunStatus.FAILED

pytestmark = pytest.mark.admin_db


def activity_of(response, workflow: str):
    [found] = [a for a in response.context["last_day"].activities if a.workflow == workflow]
    return found


def test_the_charts_show_rolled_up_hours_and_the_open_hour_live(backend, admin_client):
    open_hour = hour_of(timezone.now())
    three_ago = open_hour - 3 * HOUR
    for minute in (5, 10, 15):
        ended_task(three_ago + timedelta(minutes=minute), attempts=((0.1, COMPLETED),))
    ended_task(
        three_ago + timedelta(minutes=40),
        status=TaskStatus.FAILED,
        attempts=((3.0, FAILED),),
    )
    roll_up(backend)
    ended_task(open_hour + timedelta(seconds=1), attempts=((0.1, COMPLETED),))  # live

    response = admin_client.get(OVERVIEW_URL)
    assert response.status_code == 200
    activity = activity_of(response, "three-steps")
    slots = {slot.hour: slot for slot in activity.slots}
    assert len(activity.slots) == 24
    assert (slots[three_ago].counts.completed, slots[three_ago].counts.failed) == (3, 1)
    assert slots[open_hour].live
    assert slots[open_hour].counts.completed == 1
    assert activity.totals.step_attempts == 5
    # 4 of 5 attempts took 100 ms, one 3 s: p50 reads 100 ms, p95 3 s (bucket middles).
    assert activity.percentile(50) == middle(bucket(0.1))
    assert activity.percentile(95) == middle(bucket(3.0))
    assert response.context["last_day"].missing_hours == 0

    html = response.content.decode()
    row = html[html.index('data-workflow="three-steps"') :]
    row = row[: row.index("</tr>")]
    span = f"{hour_label(three_ago)}-{hour_label(three_ago + HOUR)}"
    assert f"<title>{span}: 3 completed, 1 failed</title>" in row
    assert ">three-steps: tasks completed and failed per hour</title>" in row
    assert "In the last 24 hours: 4 completed, 1 failed." in row
    assert 'role="img"' in row
    assert "<desc" in row
    assert len(re.findall(r'class="salvador-chart-failed"', row)) == 1
    assert "three-steps: step durations per hour, p50 and p95" in row
    p50 = format_duration(middle(bucket(0.1)))  # 99 ms: the middle of 100 ms's bucket
    assert f'<td class="numeric salvador-p50">{p50}</td>' in row
    assert "salvador-chart-missing" not in row


def test_hours_not_rolled_up_are_drawn_as_missing(backend, admin_client):
    open_hour = hour_of(timezone.now())
    ended_task(open_hour - 5 * HOUR + timedelta(minutes=1))  # never rolled up
    ended_task(open_hour - HOUR + timedelta(minutes=1))  # counted live: not rolled up yet
    response = admin_client.get(OVERVIEW_URL)
    activity = activity_of(response, "three-steps")
    slots = {slot.hour: slot for slot in activity.slots}
    assert slots[open_hour - 5 * HOUR].counts is None
    assert slots[open_hour - HOUR].live
    assert slots[open_hour - HOUR].counts.completed == 1
    assert response.context["last_day"].missing_hours == 22
    html = response.content.decode()
    assert "22 hours are not rolled up yet" in html
    assert "not rolled up yet</title>" in html


def test_the_charts_cost_the_same_few_queries_for_one_hour_or_thirty(backend, admin_client):
    open_hour = hour_of(timezone.now())

    def queries_of_the_overview() -> list[str]:
        with CaptureQueriesContext(connections[backend]) as captured:
            assert admin_client.get(OVERVIEW_URL).status_code == 200
        return [query["sql"] for query in captured.captured_queries]

    ended_task(open_hour - HOUR, attempts=((0.5, COMPLETED),))
    roll_up(backend)
    few = queries_of_the_overview()
    for hours in range(1, 30):
        ended_task(open_hour - hours * HOUR, attempts=((0.5, COMPLETED),))
        ended_task(open_hour - hours * HOUR, workflow="flaky", attempts=((0.5, COMPLETED),))
    roll_up(backend)
    many = queries_of_the_overview()
    assert len(many) == len(few)
    assert sum("salvador_hourlystats" in sql for sql in many) == 1
    assert sum("salvador_steprun" in sql for sql in many) == 1  # the open hour, live


def test_the_stuck_panel_counts_and_links_each_kind(backend, admin_client, monkeypatch):
    monkeypatch.setattr(stuck, "SIGNAL_SECONDS", 1800.0)
    now = timezone.now()
    past = TaskFactory(running=True, lease_expires_at=now - timedelta(seconds=5))
    TaskFactory(running=True)  # its lease holds
    late = TaskFactory(run_after=now - timedelta(minutes=6))
    TaskFactory(run_after=now - timedelta(minutes=1))  # due, not for long
    TaskFactory(run_after=now + timedelta(hours=1))  # not due
    waiting = TaskFactory(status=TaskStatus.WAITING, waiting_for="approved")
    sleeping = TaskFactory(status=TaskStatus.WAITING, waiting_for="")
    young = TaskFactory(status=TaskStatus.WAITING, waiting_for="approved")
    tasks = Task.objects.using(backend)
    tasks.filter(pk__in=[waiting.pk, sleeping.pk]).update(updated_at=now - timedelta(hours=1))
    tasks.filter(pk=young.pk).update(updated_at=now - timedelta(minutes=10))

    response = admin_client.get(OVERVIEW_URL)
    counts = {item.kind.key: item.count for item in response.context["stuck"]}
    assert counts == {"lease": 1, "due": 1, "signal": 1}
    html = response.content.decode()
    assert "waiting on a signal for more than 30 min" in html
    for key, task in (("lease", past), ("due", late), ("signal", waiting)):
        assert f'href="/admin/salvador/task/?stuck={key}">1<' in html
        listed = admin_client.get("/admin/salvador/task/", {"stuck": key})
        assert [row.pk for row in listed.context["cl"].result_list] == [task.pk]
