"""Waits inside a step: signals, sleeps, children and events, durable across replays.

A step that has to wait raises :class:`Suspend` (a ``BaseException``, so a step's own
``except Exception`` does not swallow it); the engine then makes the task wait
(:mod:`.suspension`): its claim goes, and it holds no worker until the signal arrives
or its timer is due. The step then runs again from its beginning; each wait it
already completed returns at once with the same result, found by its position
among the step's waits (:class:`StepWaits`). What a step took and published (the
signals it consumed, the waits that ended, its events) is written with its next
commit: its checkpoint, or its next wait (:func:`write_effects`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings as django_settings
from django.db import connections
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils import timezone

from salvador_django import dialect, events
from salvador_django.conf import get_settings
from salvador_django.engine.blocked import Blocked, Suspend, wait_seconds
from salvador_django.engine.children import StepChildren
from salvador_django.exceptions import InvalidWait, PayloadError, WaitsChanged, WaitTimeout
from salvador_django.models import (
    EVENT_KEY_MAX_LENGTH,
    SIGNAL_NAME_MAX_LENGTH,
    Event,
    Signal,
    Task,
    Wait,
    check_name,
)
from salvador_django.payloads import check_json
from salvador_django.status import WaitKind, WaitOutcome


@dataclass(frozen=True)
class Recorded:
    """A wait of this step recorded by an earlier run: ended, or open (the task waits there)."""

    position: int
    kind: str
    name: str
    outcome: str
    payload: Any
    until: datetime | None
    #: Whether ``until`` has passed, on the database's clock (when it was read).
    due: bool


@dataclass(frozen=True)
class Ended:
    """A wait that ended in this run: written with the step's next commit."""

    position: int
    kind: str
    name: str
    outcome: str
    payload: Any = None
    signal_id: int | None = None
    #: Whether its row exists already (the task waited there): it is then closed.
    recorded: bool = False


@dataclass
class StepWaits:
    """The waits, signals and events of one run of one step (``task.wait_for`` & co.)."""

    database: str
    task: Task
    step_name: str
    position: int = 0
    #: Signals taken by this run (ids), consumed with its next commit.
    taken: list[int] = field(default_factory=list)
    ended: list[Ended] = field(default_factory=list)
    events: dict[str, Any] = field(default_factory=dict)
    _recorded: dict[int, Recorded] | None = None
    _children: StepChildren | None = None

    @property
    def children(self) -> StepChildren:
        """The children this run of the step starts and waits for."""
        if self._children is None:
            self._children = StepChildren(self)
        return self._children

    @property
    def has_effects(self) -> bool:
        """Whether the step's next commit has more to write than its checkpoint."""
        new_children = self._children is not None and self._children.has_effects
        return bool(self.ended or self.events or new_children)

    def clear(self) -> None:
        """Forget the effects once they are committed."""
        self.ended, self.taken, self.events = [], [], {}
        if self._children is not None:
            self._children.committed()

    # -- the calls a step makes -----------------------------------------------------

    def wait_for(self, name: str, *, timeout: float | timedelta | None = None) -> Any:
        _checked(check_name, name, "A signal's name", SIGNAL_NAME_MAX_LENGTH)
        seconds = None if timeout is None else wait_seconds(timeout, "timeout")
        position, record = self._next(WaitKind.SIGNAL, name)
        if record is not None and record.outcome:
            if record.outcome == WaitOutcome.TIMED_OUT:
                raise _timed_out(name, record.until)
            return record.payload
        signal = self._first_signal(name)
        if signal is not None:
            signal_id, payload = signal
            self.taken.append(signal_id)
            self._end(
                position, WaitKind.SIGNAL, name, WaitOutcome.RECEIVED, record, payload, signal_id
            )
            return payload
        if record is not None and record.due:
            self._end(position, WaitKind.SIGNAL, name, WaitOutcome.TIMED_OUT, record)
            raise _timed_out(name, record.until)
        raise Suspend(self._blocked(position, WaitKind.SIGNAL, name, record, seconds=seconds))

    def sleep(self, duration: float | timedelta) -> None:
        seconds = wait_seconds(duration, "duration")
        position, record = self._next(WaitKind.SLEEP, "")
        self._sleep(position, record, seconds=seconds)

    def sleep_until(self, when: datetime) -> None:
        if not isinstance(when, datetime):
            raise InvalidWait(f"sleep_until() needs a datetime, not {type(when).__name__}.")
        if django_settings.USE_TZ and timezone.is_naive(when):
            raise InvalidWait("sleep_until() needs a timezone-aware datetime (USE_TZ is True).")
        position, record = self._next(WaitKind.SLEEP, "")
        if record is None and when <= self._database_now():
            self._end(position, WaitKind.SLEEP, "", WaitOutcome.SLEPT, None)
            return
        self._sleep(position, record, until=when)

    def set_event(self, key: str, value: Any) -> None:
        _checked(check_name, key, "An event's key", EVENT_KEY_MAX_LENGTH)
        _checked(check_json, value, get_settings().MAX_BODY_BYTES, "The event's value")
        self.events[key] = value

    # -- what they share --------------------------------------------------------------

    def _sleep(
        self,
        position: int,
        record: Recorded | None,
        *,
        seconds: float | None = None,
        until: datetime | None = None,
    ) -> None:
        if record is not None and record.outcome:
            return
        if record is not None and record.due:
            self._end(position, WaitKind.SLEEP, "", WaitOutcome.SLEPT, record)
            return
        raise Suspend(
            self._blocked(position, WaitKind.SLEEP, "", record, seconds=seconds, until=until)
        )

    def _next(self, kind: str, name: str) -> tuple[int, Recorded | None]:
        """The position of this call among the step's waits, and what a run recorded there."""
        self.position += 1
        record = self._records().get(self.position)
        if record is not None and (record.kind, record.name) != (kind, name):
            was = _describe(record.kind, record.name)
            raise WaitsChanged(
                f"Step {self.step_name!r} {was} at its wait #{self.position} when it ran before, "
                f"and now {_describe(kind, name)}: a step's waits must come in the same order "
                "each time it runs."
            )
        return self.position, record

    def _records(self) -> dict[int, Recorded]:
        """The waits earlier runs of this step recorded: read once, at the first wait."""
        if self._recorded is None:
            rows = (
                Wait.objects.using(self.database)
                .filter(task_id=self.task.id, step_name=self.step_name)
                .annotate(due=ExpressionWrapper(Q(until__lte=Now()), output_field=BooleanField()))
                .values_list("position", "kind", "name", "outcome", "payload", "until", "due")
            )
            self._recorded = {row[0]: Recorded(*row[:-1], due=bool(row[-1])) for row in rows}
        return self._recorded

    def _first_signal(self, name: str) -> tuple[int, Any] | None:
        """The oldest signal ``name`` not yet delivered nor taken by this run."""
        found = (
            Signal.objects.using(self.database)
            .filter(task_id=self.task.id, name=name, consumed_at__isnull=True)
            .exclude(id__in=self.taken)
            .order_by("id")
            .values_list("id", "payload")
            .first()
        )
        return None if found is None else (found[0], found[1])

    def _end(
        self,
        position: int,
        kind: str,
        name: str,
        outcome: str,
        record: Recorded | None,
        payload: Any = None,
        signal_id: int | None = None,
    ) -> None:
        self.ended.append(
            Ended(position, kind, name, outcome, payload, signal_id, recorded=record is not None)
        )

    def _blocked(
        self,
        position: int,
        kind: str,
        name: str,
        record: Recorded | None,
        *,
        seconds: float | None = None,
        until: datetime | None = None,
    ) -> Blocked:
        if record is not None:  # waiting there again: the same deadline as before
            return Blocked(position, kind, name, until=record.until, recorded=True)
        return Blocked(position, kind, name, until=until, seconds=seconds)

    def _database_now(self) -> datetime:
        now: datetime = (
            Task.objects.using(self.database)
            .filter(id=self.task.id)
            .annotate(now=Now())
            .values_list("now", flat=True)
            .get()
        )
        return now


def write_effects(waits: StepWaits, *, children: bool = True) -> None:
    """Write what a step run did besides its result: in its commit's transaction.

    The signals it took are consumed, the waits that ended are recorded, its events
    are published (and their readers woken when it commits).
    """
    database, task_id = waits.database, waits.task.id
    if children and waits._children is not None:
        waits._children.write()
    for ended in waits.ended:
        consumed_by = f"{waits.step_name}#{ended.position}"
        if ended.signal_id is not None:
            Signal.objects.using(database).filter(
                id=ended.signal_id, consumed_at__isnull=True
            ).update(consumed_at=Now(), consumed_by=consumed_by)
        fields = {
            "outcome": ended.outcome,
            "payload": ended.payload,
            "signal_id": ended.signal_id,
            "finished_at": Now(),
        }
        rows = Wait.objects.using(database)
        if ended.recorded:
            rows.filter(task_id=task_id, step_name=waits.step_name, position=ended.position).update(
                **fields
            )
        else:
            rows.create(
                task_id=task_id,
                step_name=waits.step_name,
                position=ended.position,
                kind=ended.kind,
                name=ended.name,
                **fields,
            )
    if waits.events:
        now = timezone.now()
        Event.objects.using(database).bulk_create(
            [
                Event(task_id=task_id, key=key, value=value, updated_at=now)
                for key, value in waits.events.items()
            ],
            update_conflicts=True,
            **dialect.conflict_target(connections[database], ["task", "key"]),
            update_fields=["value", "updated_at"],
        )
        events.announce(database, task_id, list(waits.events))


def _checked(check: Any, *args: Any) -> None:
    """Run ``check``; its ``PayloadError`` becomes an ``InvalidWait`` (not retried)."""
    try:
        check(*args)
    except PayloadError as exc:
        raise InvalidWait(str(exc)) from exc


def _timed_out(name: str, until: datetime | None) -> WaitTimeout:
    when = f" before {until.isoformat(timespec='seconds')}" if until is not None else ""
    return WaitTimeout(f"No signal {name!r} arrived{when}.")


def _describe(kind: str, name: str) -> str:
    if kind == WaitKind.CHILDREN:
        return "waited for children"
    return f"waited for signal {name!r}" if kind == WaitKind.SIGNAL else "slept"
