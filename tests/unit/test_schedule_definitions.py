"""Schedule definitions: what bad input gets, and when their ticks fall (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from salvador_django import Schedule, Workflow
from salvador_django.exceptions import ConfigurationError
from salvador_django.registry import registry


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "0 3 * *"}, "is not a cron expression"),
        ({"cron": "61 3 * * *"}, "is not a cron expression"),
        ({"cron": "0 3 * * * * * *"}, "is not a cron expression"),
        ({"cron": "0 3 * * *", "timezone": "Europe/Pariss"}, "unknown time zone 'Europe/Pariss'"),
        ({"cron": "0 3 * * *", "timezone": "../etc/passwd"}, "unknown time zone"),
        ({"cron": "0 3 * * *", "every": timedelta(hours=1)}, "either cron or every"),
        ({}, "either cron or every"),
        ({"every": timedelta(milliseconds=500)}, "at least 1 second"),
        ({"every": 60}, "a timedelta"),
        ({"cron": "0 3 * * *", "catch_up": "some"}, "catch_up must be one of latest, all, none"),
        ({"cron": "0 3 * * *", "jitter": timedelta(seconds=-1)}, "jitter"),
        ({"cron": "0 3 * * *", "body": {"when": datetime(2026, 1, 1)}}, "body is not JSON"),
        ({"cron": "0 3 * * *", "meta": {"scheduled_for": "x"}}, "set by each tick"),
        ({"cron": "0 3 * * *", "meta": {"n": 1}}, "meta must map str to str"),
        ({"cron": "0 3 * * *", "name": "x" * 151}, "at most 150 characters"),
    ],
)
def test_bad_schedules_raise_configuration_error_naming_them(kwargs, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        Schedule(**{"name": "nightly", **kwargs})


def test_an_error_names_the_schedule():
    with pytest.raises(ConfigurationError, match="Schedule 'nightly': '0 3 \\* \\*' is not"):
        Schedule("0 3 * *", name="nightly")


def test_schedule_names_are_unique_in_a_workflow_and_across_workflows(workflow_names):
    with pytest.raises(ConfigurationError, match="two schedules named 'twice'"):
        Workflow("twice-wf", schedules=[Schedule("0 3 * * *", name="twice")] * 2)
    assert "twice-wf" not in registry  # nothing registered when its schedules are wrong
    first = Workflow("first-wf", schedules=[Schedule("0 3 * * *", name="shared")])
    workflow_names.append(first.name)
    with pytest.raises(ConfigurationError, match="workflow 'first-wf' has a schedule of that"):
        Workflow("second-wf", schedules=[Schedule("0 4 * * *", name="shared")])
    second = Workflow("second-wf")
    workflow_names.append(second.name)
    with pytest.raises(ConfigurationError, match="'shared'"):
        second.schedule("0 4 * * *", name="shared")
    first.schedule("0 3 * * *")
    with pytest.raises(ConfigurationError, match="two schedules named 'first-wf:0 3 \\* \\* \\*'"):
        first.schedule("0 3 * * *")  # the same default name


def test_a_schedule_s_default_name_is_its_workflow_and_expression(workflow_names):
    workflow = Workflow("named-wf")
    workflow_names.append(workflow.name)
    assert workflow.schedule(every=timedelta(minutes=5)).name == "named-wf:every 300s"
    assert workflow.schedule("*/10 * * * * *").name == "named-wf:*/10 * * * * *"
    assert [s.name for s in workflow.schedules] == [
        "named-wf:every 300s",
        "named-wf:*/10 * * * * *",
    ]


@pytest.mark.parametrize(
    ("zone", "after", "expected"),
    [
        # New York springs forward at 02:00 on 8 March 2026: 02:30 runs at 03:00 EDT.
        ("America/New_York", datetime(2026, 3, 7, 12, tzinfo=UTC), "2026-03-08T07:00:00+00:00"),
        # ... and falls back on 1 November: 02:30 is not repeated (01:00-02:00 is).
        ("America/New_York", datetime(2026, 10, 31, 12, tzinfo=UTC), "2026-11-01T07:30:00+00:00"),
        # Lord Howe Island moves by half an hour, at 02:00 on 4 October 2026.
        ("Australia/Lord_Howe", datetime(2026, 10, 3, 12, tzinfo=UTC), "2026-10-03T15:30:00+00:00"),
    ],
)
def test_daily_0230_across_dst_changes_elsewhere(zone, after, expected):
    schedule = Schedule("30 2 * * *", name="x", timezone=zone)
    assert schedule.next_tick(after).isoformat() == expected


def test_a_repeated_hour_runs_an_hourly_tick_once():
    schedule = Schedule("30 * * * *", name="x", timezone="America/New_York")
    tick = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
    local = []
    for _ in range(4):
        tick = schedule.next_tick(tick)
        local.append(tick.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M %Z"))
    assert local == ["00:30 EDT", "01:30 EDT", "02:30 EST", "03:30 EST"]


def test_previous_tick_mirrors_next_tick():
    schedule = Schedule("*/15 * * * *", name="x", timezone="Europe/Paris")
    forward = [datetime(2026, 3, 28, 23, 0, tzinfo=UTC)]  # across the skipped hour
    for _ in range(12):
        forward.append(schedule.next_tick(forward[-1]))
    backward = [forward[-1]]
    for _ in range(11):
        backward.append(schedule.previous_tick(backward[-1]))
    assert backward[::-1] == forward[1:]


def test_seconds_come_first_and_intervals_align_to_the_epoch():
    every_ten = Schedule("*/10 * * * * *", name="x")
    assert every_ten.next_tick(datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)) == datetime(
        2026, 1, 1, 0, 0, 10, tzinfo=UTC
    )
    every_seven = Schedule(every=timedelta(seconds=7), name="y")
    tick = every_seven.next_tick(datetime(2026, 1, 1, tzinfo=UTC))
    assert tick.timestamp() % 7 == 0
    assert every_seven.previous_tick(tick) == tick - timedelta(seconds=7)


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        (Schedule("0 3 * * *", timezone="Europe/Paris"), "At 03:00 (Europe/Paris)"),
        (Schedule("0 9 * * 1-5"), "At 09:00, Monday through Friday (UTC)"),
        (Schedule(every=timedelta(minutes=5)), "Every 5 minutes"),
        (Schedule(every=timedelta(hours=1)), "Every hour"),
        (Schedule(every=timedelta(seconds=90)), "Every 90 seconds"),
    ],
)
def test_schedules_in_plain_words(schedule, words):
    assert schedule.describe() == words
