"""The app's tables: tasks and their step runs; signals, waits and events; schedules;
workers; hourly statistics."""

from salvador_django.models.schedules import SCHEDULE_NAME_MAX_LENGTH, Schedule
from salvador_django.models.stats import HourlyStats
from salvador_django.models.tasks import Overview, StepRun, Task
from salvador_django.models.waits import (
    CHILD_KEY_MAX_LENGTH,
    EVENT_KEY_MAX_LENGTH,
    IDEMPOTENCY_KEY_MAX_LENGTH,
    SIGNAL_NAME_MAX_LENGTH,
    Event,
    Signal,
    Wait,
    check_name,
    deliver_signal,
    forget_waits,
)
from salvador_django.models.workers import WORKER_NAME_MAX_LENGTH, WorkerKind, WorkerProcess

__all__ = [
    "CHILD_KEY_MAX_LENGTH",
    "EVENT_KEY_MAX_LENGTH",
    "IDEMPOTENCY_KEY_MAX_LENGTH",
    "SCHEDULE_NAME_MAX_LENGTH",
    "SIGNAL_NAME_MAX_LENGTH",
    "WORKER_NAME_MAX_LENGTH",
    "Event",
    "HourlyStats",
    "Overview",
    "Schedule",
    "Signal",
    "StepRun",
    "Task",
    "Wait",
    "WorkerKind",
    "WorkerProcess",
    "check_name",
    "deliver_signal",
    "forget_waits",
]  # fmt: skip
