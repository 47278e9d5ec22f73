"""The overview's "stuck" panel, and the task list's filter behind its links: tasks
running past their lease, due tasks not taken for a while, tasks waiting on a signal
for long. Each is a query through one of the task table's partial indexes, counted up
to :data:`~salvador_django.admin.pagination.COUNT_CAP`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.durations import format_duration
from salvador_django.admin.pagination import COUNT_CAP
from salvador_django.clock import now_plus
from salvador_django.models import Task
from salvador_django.status import TaskStatus

#: A due task not taken for this long (seconds) is stuck: no worker runs its workflow,
#: or the workers cannot keep up.
DUE_SECONDS = 300.0
#: A task waiting on a signal for this long (seconds) is shown: a signal that may never come.
SIGNAL_SECONDS = 3600.0


def past_lease(tasks: QuerySet[Any]) -> QuerySet[Any]:
    # salvador_task_lease (lease_expires_at) WHERE status = 'running'
    return tasks.filter(status=TaskStatus.RUNNING, lease_expires_at__lt=now_plus(0))


def due_for_long(tasks: QuerySet[Any]) -> QuerySet[Any]:
    # salvador_task_due (priority DESC, run_after) WHERE status = 'pending'
    return tasks.filter(status=TaskStatus.PENDING, run_after__lt=now_plus(-DUE_SECONDS))


def waiting_for_a_signal_for_long(tasks: QuerySet[Any]) -> QuerySet[Any]:
    # salvador_task_timers (wake_at) WHERE status = 'waiting'; a task's last move (to
    # waiting) wrote its updated_at.
    return tasks.filter(
        status=TaskStatus.WAITING, updated_at__lt=now_plus(-SIGNAL_SECONDS)
    ).exclude(waiting_for="")


def threshold(seconds: float) -> str:
    """``5 min``, ``1 h``: a threshold in whole minutes or hours, else as a duration."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return _("%(n)d h") % {"n": seconds // 3600}
    if seconds >= 60 and seconds % 60 == 0:
        return _("%(n)d min") % {"n": seconds // 60}
    return format_duration(seconds)


@dataclass(frozen=True)
class Stuck:
    """A kind of stuck task: the filter's value, what the panel says, its query."""

    key: str
    label: str
    help: str
    select: Callable[[QuerySet[Any]], QuerySet[Any]]


def kinds() -> list[Stuck]:
    """The kinds, their thresholds read now (a test may change them)."""
    due, signal = threshold(DUE_SECONDS), threshold(SIGNAL_SECONDS)
    return [
        Stuck(
            "lease",
            str(_("running past their lease")),
            str(_("Their worker died or stalls: the next sweep requeues them.")),
            past_lease,
        ),
        Stuck(
            "due",
            str(_("due for more than %(t)s") % {"t": due}),
            str(_("No worker runs their workflow, or the workers cannot keep up.")),
            due_for_long,
        ),
        Stuck(
            "signal",
            str(_("waiting on a signal for more than %(t)s") % {"t": signal}),
            str(_("A signal that may never come: check who should send it.")),
            waiting_for_a_signal_for_long,
        ),
    ]


@dataclass(frozen=True)
class StuckCount:
    kind: Stuck
    count: int
    capped: bool
    url: str


def count_stuck(database: str, list_url: str) -> list[StuckCount]:
    """How many tasks of each kind are stuck (up to COUNT_CAP): one query each."""
    tasks = Task.objects.using(database).order_by()
    found = []
    for kind in kinds():
        count = kind.select(tasks)[: COUNT_CAP + 1].count()
        url = f"{list_url}?{urlencode({StuckFilter.parameter_name: kind.key})}"
        found.append(StuckCount(kind, min(count, COUNT_CAP), count > COUNT_CAP, url))
    return found


class StuckFilter(admin.SimpleListFilter):
    """The stuck tasks of one kind (the overview's links)."""

    title = _("stuck")
    parameter_name = "stuck"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(kind.key, kind.label) for kind in kinds()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        for kind in kinds():
            if kind.key == self.value():
                return kind.select(queryset)
        return queryset
