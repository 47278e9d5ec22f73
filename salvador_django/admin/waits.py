"""A task's waits on its page: what it waits for, its waits, undelivered signals, events.

Each list is read bounded: its first :data:`SHOWN` rows, and how many there are
(counted up to :data:`~salvador_django.admin.pagination.COUNT_CAP`) only when there
may be more. A signal's payload or an event's value can be a megabyte: only its
first :data:`VALUE_LENGTH` characters are read, in SQL, as JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db.models import Model, QuerySet, TextField
from django.db.models.functions import Cast, Substr
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext

from salvador_django.admin.durations import format_moment
from salvador_django.admin.pagination import COUNT_CAP
from salvador_django.models import Event, Signal, Task, Wait
from salvador_django.status import TaskStatus

SHOWN = 50  # rows of each list on the page
VALUE_LENGTH = 200  # characters of a payload or a value on the page
WAITS_READ = "_salvador_waits"  # the attribute a task's page keeps what it read in

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Listing(Generic[M]):
    """The rows a page shows of a list, and how many the list holds."""

    rows: list[M]
    total: int
    capped: bool = False  # it holds more than ``total``

    @property
    def more(self) -> int:
        """How many rows are not shown (at least: see ``capped``)."""
        return self.total - len(self.rows)

    def note(self, which: str) -> str:
        """E.g. "The first 50 of 1,234." when rows are not shown; ``which`` is
        "first" or "latest"."""
        if not self.more:
            return ""
        values = {"shown": len(self.rows), "total": number_format(self.total, force_grouping=True)}
        if which == "latest":
            text = (
                gettext("The latest %(shown)d of more than %(total)s.")
                if self.capped
                else gettext("The latest %(shown)d of %(total)s.")
            )
        else:
            text = (
                gettext("The first %(shown)d of more than %(total)s.")
                if self.capped
                else gettext("The first %(shown)d of %(total)s.")
            )
        return text % values


def listing(every: QuerySet[M], shown: QuerySet[M]) -> Listing[M]:
    """The first :data:`SHOWN` rows of ``shown``; ``every`` row, counted only when there
    may be more (plain, so the count reads no payload)."""
    rows = list(shown[:SHOWN])
    if len(rows) < SHOWN:
        return Listing(rows, len(rows))
    count = every.order_by()[: COUNT_CAP + 1].count()
    return Listing(rows, min(count, COUNT_CAP), capped=count > COUNT_CAP)


def json_head(field: str) -> dict[str, Substr]:
    """An annotation reading the beginning of the JSON ``field`` as text, in SQL."""
    text = Cast(field, output_field=TextField())
    return {f"{field}_head": Substr(text, 1, VALUE_LENGTH + 1)}


def json_head_of(row: Any, field: str) -> str:
    """The text :func:`json_head` read: its beginning, with an ellipsis if it goes on."""
    text: str | None = getattr(row, f"{field}_head")
    if text is None:  # SQL NULL: stored from None
        return "null"
    return text if len(text) <= VALUE_LENGTH else text[:VALUE_LENGTH] + "…"


@dataclass(frozen=True)
class TaskWaits:
    """What a task's page shows of its waits, signals and events."""

    waits: Listing[Wait]
    signals: Listing[Signal]
    events: Listing[Event]

    def __bool__(self) -> bool:
        return bool(self.waits.rows or self.signals.rows or self.events.rows)


def read_waits(task: Task) -> TaskWaits:
    """The task's latest waits (in the order they began), its undelivered signals (oldest
    first) and its events (by key): read once per page, kept on ``task``."""
    read: TaskWaits | None = getattr(task, WAITS_READ, None)
    if read is not None:
        return read
    alias = task._state.db
    waits = Wait.objects.using(alias).filter(task_id=task.pk)
    signals = Signal.objects.using(alias).filter(task_id=task.pk, consumed_at__isnull=True)
    events = Event.objects.using(alias).filter(task_id=task.pk)
    latest = listing(waits, waits.defer("payload").order_by("-started_at", "-id"))
    read = TaskWaits(
        Listing(latest.rows[::-1], latest.total, latest.capped),
        listing(signals, signals.defer("payload").annotate(**json_head("payload")).order_by("id")),
        listing(events, events.defer("value").annotate(**json_head("value")).order_by("key")),
    )
    setattr(task, WAITS_READ, read)
    return read


def waiting_for(task: Task) -> SafeString | None:
    """What a waiting or paused task waits for and until when, e.g. "signal 'approval' ·
    until 2026-11-30 12:00:05 UTC", "3 children · no timeout" or "a timer · until …";
    None for any other task."""
    if task.status not in (TaskStatus.WAITING, TaskStatus.PAUSED):
        return None
    if task.waiting_for:
        what = gettext("signal '%(name)s'") % {"name": task.waiting_for}
    elif task.children_left is not None:
        left = task.children_left
        what = ngettext("%(count)s unfinished child", "%(count)s unfinished children", left) % {
            "count": number_format(left, force_grouping=True)
        }
    elif task.wake_at is not None:
        what = gettext("a timer")
    else:  # paused before it began to wait
        return None
    if task.wake_at is None:
        return format_html("{} · {}", what, gettext("no timeout"))
    until = format_html("{} {}", gettext("until"), format_moment(task.wake_at))
    if task.status == TaskStatus.PAUSED:
        note = gettext("(its timer does not fire while the task is paused)")
        return format_html('{} · {} <span class="help">{}</span>', what, until, note)
    return format_html("{} · {}", what, until)
