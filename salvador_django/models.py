"""Tasks and the record of their step attempts."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.db import connections, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _

from salvador_django import transitions
from salvador_django.conf import get_settings
from salvador_django.exceptions import InvalidTransition, NotInStep, PayloadError
from salvador_django.links import DEFAULT_LINK_AGE, signal_path
from salvador_django.payloads import check_json, text_problem
from salvador_django.queries import TaskQuerySet
from salvador_django.registry import registry
from salvador_django.status import (
    FINISHED,
    CompensationStatus,
    StepRunStatus,
    TaskStatus,
    WaitKind,
    WaitOutcome,
)

IDEMPOTENCY_KEY_MAX_LENGTH = 255
SIGNAL_NAME_MAX_LENGTH = 200
EVENT_KEY_MAX_LENGTH = 200


class Task(models.Model):
    """One run of a workflow: its input, progress and outcome."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.CharField(_("workflow"), max_length=200)
    body: Any = models.JSONField(_("body"), null=True, blank=True)
    state = models.JSONField(_("state"), default=dict, blank=True)
    meta = models.JSONField(_("meta"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=TaskStatus.choices, default=TaskStatus.PENDING
    )
    step = models.PositiveIntegerField(_("step"), default=0, help_text=_("Steps completed."))
    step_name = models.CharField(
        _("step name"), max_length=200, blank=True, help_text=_("Name of the next step to run.")
    )
    error = models.TextField(_("error"), blank=True)
    attempt = models.PositiveIntegerField(
        _("attempt"),
        default=0,
        help_text=_("Attempts made of the current step (while it runs: this attempt's number)."),
    )
    recoveries = models.PositiveIntegerField(
        _("recoveries"),
        default=0,
        help_text=_("Lease expiries of the current step since its last checkpoint."),
    )
    priority = models.IntegerField(_("priority"), default=0, help_text=_("Higher runs first."))
    run_after = models.DateTimeField(_("run after"), db_default=Now())
    # NULL, not "", for "no key" and "not claimed": the unique constraint and the
    # partial indexes must ignore those rows.
    idempotency_key = models.CharField(  # noqa: DJ001
        _("idempotency key"), max_length=IDEMPOTENCY_KEY_MAX_LENGTH, null=True, blank=True
    )
    claimed_by = models.CharField(_("claimed by"), max_length=255, null=True, blank=True)  # noqa: DJ001
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), db_default=Now())
    updated_at = models.DateTimeField(_("updated at"), db_default=Now())
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    compensation = models.CharField(
        _("compensation"),
        max_length=16,
        choices=CompensationStatus.choices,
        db_default=CompensationStatus.NONE,
        blank=True,
        help_text=_("Undoing the completed steps after a failure or a cancellation."),
    )
    failed_step = models.CharField(
        _("failed step"),
        max_length=200,
        blank=True,
        db_default="",
        help_text=_("Where the task broke (kept after compensation; a requeue clears it)."),
    )
    cancel_requested_at = models.DateTimeField(
        _("cancel requested at"),
        null=True,
        blank=True,
        help_text=_("Set when a running task is cancelled: it stops after its current step."),
    )
    pause_requested_at = models.DateTimeField(
        _("pause requested at"),
        null=True,
        blank=True,
        help_text=_("Set when a running task is paused: it pauses after its current step."),
    )
    waiting_for = models.CharField(
        _("waiting for"),
        max_length=SIGNAL_NAME_MAX_LENGTH,
        blank=True,
        db_default="",
        help_text=_("While waiting: the name of the signal awaited (empty for a sleep)."),
    )
    wake_at = models.DateTimeField(
        _("wake at"),
        null=True,
        blank=True,
        help_text=_("While waiting: when the wait ends by itself (its timeout or sleep)."),
    )

    objects: ClassVar[TaskQuerySet] = TaskQuerySet.as_manager()  # type: ignore[assignment]

    #: While a step runs: the ``time.monotonic()`` by which a step with a timeout
    #: should return. Long-running step code can check it to stop early.
    deadline: float | None = None

    class Meta:
        app_label = "salvador"
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        indexes: ClassVar = [
            models.Index(
                F("priority").desc(),
                "run_after",
                name="salvador_task_due",
                condition=Q(status=TaskStatus.PENDING),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="salvador_task_lease",
                condition=Q(status=TaskStatus.RUNNING),
            ),
            models.Index(fields=["-created_at"], name="salvador_task_created"),
            # The admin's filters, newest first. Completed tasks (most rows) are
            # left out: the created index finds them quickly enough.
            models.Index(
                fields=["status", "-created_at"],
                name="salvador_task_triage",
                condition=~Q(status=TaskStatus.COMPLETED),
            ),
            models.Index(fields=["workflow", "-created_at"], name="salvador_task_workflow"),
            # The admin's "failed step" filter, over failed tasks only.
            models.Index(
                fields=["failed_step", "-finished_at"],
                name="salvador_task_failed_step",
                condition=Q(status=TaskStatus.FAILED),
            ),
            models.Index(
                fields=["-finished_at"],
                name="salvador_task_failures",
                condition=Q(status=TaskStatus.FAILED),
            ),
            # The timers of waiting tasks, soonest first: what the timer loop fires.
            models.Index(
                fields=["wake_at"],
                name="salvador_task_timers",
                condition=Q(status=TaskStatus.WAITING),
            ),
        ]
        permissions = (
            ("requeue_task", _("Can requeue tasks")),
            ("cancel_task", _("Can cancel tasks")),
            ("signal_task", _("Can send signals to tasks")),
            ("pause_task", _("Can pause and resume tasks")),
        )
        constraints: ClassVar = [
            models.UniqueConstraint(
                # The key first, so that the admin's search by key alone uses it too.
                fields=["idempotency_key", "workflow"],
                condition=Q(idempotency_key__isnull=False),
                name="salvador_task_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow} {self.id} ({self.status})"

    def step_key(self) -> str:
        """A stable ``"<task id>:<step name>"`` to use as an external idempotency key."""
        return f"{self.id}:{self.step_name}"

    def requeue(self, from_start: bool = False, from_step: str | None = None) -> None:
        """Run a failed or cancelled task again from the step that stopped it.

        With ``from_start`` the task restarts at its first step with an empty state;
        with ``from_step`` it runs again from that step, with the state checkpointed
        after the step before it. Both are also allowed for completed tasks. Raises
        :class:`InvalidTransition` for any other status (and when another operator
        moved it first), ``ValueError`` for a step the workflow does not have.
        """
        if from_start and from_step is not None:
            raise ValueError("Pass from_start or from_step, not both.")
        alias = self._alias()
        tasks = Task.objects.using(alias)
        with transaction.atomic(using=alias):
            if from_step is not None:
                step, state = self._restart_point(from_step, alias)
                move = transitions.REQUEUE_FROM_STEP
                params = {"step": step, "step_name": from_step, "state": state}
            elif from_start:
                steps = registry.get(self.workflow).steps
                move = transitions.RESTART
                params = {"step": 0, "step_name": steps[0].name if steps else "", "state": {}}
            else:
                move, params = transitions.REQUEUE, {}
            transitions.perform([move], tasks, self.id, **params)
            forget_waits(alias, self, from_start=from_start, from_step=from_step)
            self.refresh_from_db(using=alias)
            transitions.tasks_due.send(sender=Task, tasks=[self])

    def _restart_point(self, step_name: str, alias: str) -> tuple[int, dict[str, Any]]:
        """The index of ``step_name`` and the state checkpointed after the step before it.

        Only a step the task has reached in its current run qualifies: the steps before
        it completed (and were not undone by a compensation) and recorded their state.
        """
        row = Task.objects.using(alias).filter(id=self.id)
        current = row.values_list("status", "compensation", "step").first()
        if current is None:
            raise Task.DoesNotExist(f"Task {self.id} does not exist.")
        status, compensation, progress = current
        if not transitions.REQUEUE_FROM_STEP.allows(status, compensation):
            raise transitions.REQUEUE_FROM_STEP.refusal(self.id, status, compensation)
        steps = [step.name for step in registry.get(self.workflow).steps]
        if step_name not in steps:
            raise ValueError(
                f"Workflow {self.workflow!r} has no step {step_name!r} (steps: {', '.join(steps)})."
            )
        index = steps.index(step_name)
        if index > progress:
            reached = ", ".join(steps[: progress + 1])
            raise ValueError(
                f"Task {self.id} has not reached step {step_name!r}: it can run again from "
                f"{reached}."
            )
        if index == 0:
            return 0, {}
        state = (
            StepRun.objects.using(alias)
            .filter(task_id=self.id, name=steps[index - 1], status=StepRunStatus.COMPLETED)
            .filter(compensation=False, state__isnull=False)
            .order_by("-id")
            .values_list("state", flat=True)
            .first()
        )
        if state is None:  # completed before step runs recorded their state (migration 0006)
            raise ValueError(
                f"Task {self.id} cannot run again from step {step_name!r}: no state was "
                f"recorded after {steps[index - 1]!r}; requeue it from its first step."
            )
        return index, state

    def cancel(self) -> None:
        """Cancel the task: a pending, waiting, paused or failed one at once, a running one
        after its step.

        For a running task this records the request (:attr:`cancel_requested`); its
        worker stops after the current step and the task ends ``cancelled``. A pending,
        waiting or paused task whose completed steps have compensations is handed to a
        worker, which runs them and ends it ``cancelled``. Raises
        :class:`InvalidTransition` for a completed or cancelled task.
        """
        alias = self._alias()
        tasks = Task.objects.using(alias)
        with transaction.atomic(using=alias):
            moves = [transitions.CANCEL, transitions.REQUEST_CANCEL]
            if self._compensates_before(tasks):
                moves.insert(0, transitions.CANCEL_AND_COMPENSATE)
            move = transitions.perform(moves, tasks, self.id)
            self.refresh_from_db(using=alias)
            if move is transitions.CANCEL_AND_COMPENSATE:
                transitions.tasks_due.send(sender=Task, tasks=[self])

    def _compensates_before(self, tasks: models.QuerySet[Task]) -> bool:
        """Whether a step the task completed has a compensation (read from its row)."""
        step = tasks.filter(id=self.id).values_list("step", flat=True).first()
        if not step or self.workflow not in registry.names():
            return False
        return any(s.compensate is not None for s in registry.get(self.workflow).steps[:step])

    # -- waiting, from inside a step ----------------------------------------------------

    #: While a step runs: the engine's record of its waits (see ``engine.waits``).
    _step_waits: Any = None

    def _in_step(self, call: str) -> Any:
        if self._step_waits is None:
            raise NotInStep(
                f"task.{call}() can only be called inside a running step, on the task the "
                "step was given."
            )
        return self._step_waits

    def wait_for(self, name: str, *, timeout: float | timedelta | None = None) -> Any:
        """In a step: the payload of the next signal ``name`` sent to this task.

        Until one arrives the task waits (``waiting``), holding no worker, lease or
        thread; then the step runs again from its beginning and this call returns the
        signal's payload. With ``timeout`` (seconds or a ``timedelta``), raises
        :class:`~salvador_django.exceptions.WaitTimeout` once it passes.
        """
        return self._in_step("wait_for").wait_for(name, timeout=timeout)

    def sleep(self, duration: float | timedelta) -> None:
        """In a step: wait ``duration`` (seconds or a ``timedelta``), durably."""
        self._in_step("sleep").sleep(duration)

    def sleep_until(self, when: datetime) -> None:
        """In a step: wait until ``when`` (an aware datetime with ``USE_TZ``), durably."""
        self._in_step("sleep_until").sleep_until(when)

    def set_event(self, key: str, value: Any) -> None:
        """In a step: publish ``value`` as the latest of ``key``, with the step's checkpoint.

        Readers outside see it through :func:`salvador_django.get_event`.
        """
        self._in_step("set_event").set_event(key, value)

    # -- signals, pause and resume, from outside ----------------------------------------

    def signal(
        self, name: str, payload: Any = None, *, idempotency_key: str | None = None
    ) -> Signal:
        """Send the signal ``name`` to this task; see :func:`salvador_django.send_signal`."""
        return deliver_signal(
            self._alias(), self.id, name, payload, idempotency_key=idempotency_key
        )

    def pause(self) -> None:
        """Pause the task: a pending or waiting one at once, a running one after its step.

        A paused task is not run, and its timers do not fire, until :meth:`resume`;
        signals sent meanwhile are kept. Raises :class:`InvalidTransition` for a
        finished or paused task, and while the task compensates.
        """
        alias = self._alias()
        with transaction.atomic(using=alias):
            transitions.perform(
                [transitions.PAUSE, transitions.REQUEST_PAUSE], Task.objects.using(alias), self.id
            )
        self.refresh_from_db(using=alias)

    def resume(self) -> None:
        """Make a paused task due again (or withdraw a running task's pause request).

        Its step runs again from its beginning: a wait whose timeout passed meanwhile
        raises ``WaitTimeout`` then, and signals sent while it was paused are there.
        Raises :class:`InvalidTransition` for a task that is not paused.
        """
        alias = self._alias()
        with transaction.atomic(using=alias):
            move = transitions.perform(
                [transitions.RESUME, transitions.WITHDRAW_PAUSE], Task.objects.using(alias), self.id
            )
            self.refresh_from_db(using=alias)
            if move is transitions.RESUME:
                transitions.tasks_due.send(sender=Task, tasks=[self])

    def signal_url(
        self, name: str, payload: Any = None, *, expires: float | timedelta = DEFAULT_LINK_AGE
    ) -> str:
        """A path whose confirmed POST sends the signal ``name`` (with ``payload``) once.

        Signed with the project's ``SECRET_KEY``; valid for ``expires`` (seconds or a
        ``timedelta``). Needs ``path("salvador/", include("salvador_django.urls"))``.
        """
        check_name(name, "A signal's name", SIGNAL_NAME_MAX_LENGTH)
        check_json(payload, get_settings().MAX_BODY_BYTES, "The payload")
        return signal_path(self.id, name, payload, expires=expires)

    def _alias(self) -> str:
        return self._state.db or get_settings().DATABASE

    @property
    def cancel_requested(self) -> bool:
        """True while a cancellation waits for the current step (or compensation) to end."""
        return self.cancel_requested_at is not None and self.status in (
            TaskStatus.RUNNING,
            TaskStatus.PENDING,
        )

    @property
    def pause_requested(self) -> bool:
        """True while a running task's pause waits for its current step to end."""
        return self.pause_requested_at is not None and self.status in (
            TaskStatus.RUNNING,
            TaskStatus.PENDING,
        )


class Overview(Task):
    """No data of its own: gives the admin's overview of tasks its place in the app index."""

    class Meta:
        proxy = True
        app_label = "salvador"
        verbose_name = _("overview")
        verbose_name_plural = _("overview")
        default_permissions = ()


class StepRun(models.Model):
    """One attempt of one step of a task."""

    # No index of its own: salvador_steprun_task (task, index, attempt) serves the
    # foreign key, and every checkpoint writes one index entry fewer.
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, related_name="step_runs", db_index=False
    )
    index = models.PositiveIntegerField(_("index"))
    name = models.CharField(_("name"), max_length=200)
    attempt = models.PositiveIntegerField(_("attempt"))
    status = models.CharField(_("status"), max_length=16, choices=StepRunStatus.choices)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"))
    error = models.TextField(_("error"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)
    output = models.JSONField(_("output"), null=True, blank=True)
    state = models.JSONField(
        _("state"),
        null=True,
        blank=True,
        help_text=_("After a completed step: task.state, where a requeue from the next starts."),
    )
    worker = models.CharField(_("worker"), max_length=255, blank=True)
    compensation = models.BooleanField(
        _("compensation"), db_default=False, help_text=_("This attempt undid the step.")
    )
    next_attempt_at = models.DateTimeField(
        _("next attempt at"),
        null=True,
        blank=True,
        help_text=_("When this attempt failed and was retried: when the next one is due."),
    )

    class Meta:
        app_label = "salvador"
        verbose_name = _("step run")
        verbose_name_plural = _("step runs")
        indexes: ClassVar = [
            models.Index(fields=["task", "index", "attempt"], name="salvador_steprun_task"),
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.attempt} ({self.status})"

    @property
    def duration(self) -> timedelta:
        return self.finished_at - self.started_at


class Signal(models.Model):
    """A signal sent to a task: kept until a ``wait_for`` of its name takes it."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="signals")
    name = models.CharField(_("name"), max_length=SIGNAL_NAME_MAX_LENGTH)
    payload = models.JSONField(_("payload"), null=True, blank=True)
    idempotency_key = models.CharField(  # noqa: DJ001 - NULL: ignored by the constraint
        _("idempotency key"), max_length=IDEMPOTENCY_KEY_MAX_LENGTH, null=True, blank=True
    )
    sent_at = models.DateTimeField(_("sent at"), db_default=Now())
    consumed_at = models.DateTimeField(
        _("consumed at"),
        null=True,
        blank=True,
        help_text=_("When the step that took it checkpointed (empty: not delivered yet)."),
    )
    consumed_by = models.CharField(
        _("consumed by"),
        max_length=255,
        blank=True,
        help_text=_("The step and the position of the wait that took it."),
    )

    class Meta:
        app_label = "salvador"
        verbose_name = _("signal")
        verbose_name_plural = _("signals")
        indexes: ClassVar = [
            # The undelivered signals of a task, first in first out per name.
            models.Index(
                fields=["task", "name", "id"],
                name="salvador_signal_undelivered",
                condition=Q(consumed_at__isnull=True),
            ),
        ]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["task", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="salvador_signal_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} to {self.task_id}"


class Wait(models.Model):
    """One wait of one step, by its position among the step's waits.

    Open (no ``outcome``) while the task waits there; once it ended, a replay of the
    step returns the same result at once.
    """

    # No index of its own: salvador_wait_position (task, ...) serves the foreign key.
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="waits", db_index=False)
    step_name = models.CharField(_("step name"), max_length=200)
    position = models.PositiveIntegerField(_("position"))
    kind = models.CharField(_("kind"), max_length=16, choices=WaitKind.choices)
    name = models.CharField(_("signal name"), max_length=SIGNAL_NAME_MAX_LENGTH, blank=True)
    until = models.DateTimeField(_("until"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), db_default=Now())
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=WaitOutcome.choices, blank=True, default=""
    )
    payload = models.JSONField(_("payload"), null=True, blank=True)
    signal = models.ForeignKey(
        Signal, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        app_label = "salvador"
        verbose_name = _("wait")
        verbose_name_plural = _("waits")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["task", "step_name", "position"], name="salvador_wait_position"
            ),
        ]

    def __str__(self) -> str:
        what = f"signal {self.name!r}" if self.kind == WaitKind.SIGNAL else "sleep"
        return f"{self.step_name} #{self.position}: {what}"


class Event(models.Model):
    """The latest value a task's steps published under a key (``task.set_event``)."""

    # No index of its own: salvador_event_key (task, key) serves the foreign key.
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="events", db_index=False)
    key = models.CharField(_("key"), max_length=EVENT_KEY_MAX_LENGTH)
    value = models.JSONField(_("value"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), db_default=Now())

    class Meta:
        app_label = "salvador"
        verbose_name = _("event")
        verbose_name_plural = _("events")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["task", "key"], name="salvador_event_key"),
        ]

    def __str__(self) -> str:
        return f"{self.key} of {self.task_id}"


def check_name(name: Any, what: str, limit: int) -> None:
    """Refuse a signal name or event key that is not a short non-empty string."""
    if not isinstance(name, str) or not 0 < len(name) <= limit:
        raise PayloadError(f"{what} must be a non-empty string of at most {limit} characters.")
    problem = text_problem(name)
    if problem is not None:
        found, why = problem
        raise PayloadError(f"{what} has {found}: {why}.")


def deliver_signal(
    alias: str, task_id: Any, name: str, payload: Any, *, idempotency_key: str | None
) -> Signal:
    """Store a signal for the task in the caller's transaction; wake it if it waits for one.

    The task's row is locked first, as a worker's wait locks it: a signal and a wait
    of the same name never miss each other. Raises ``Task.DoesNotExist`` and, for a
    finished task, :class:`InvalidTransition`; nothing is stored then.
    """
    check_name(name, "A signal's name", SIGNAL_NAME_MAX_LENGTH)
    check_json(payload, get_settings().MAX_BODY_BYTES, "The payload")
    if idempotency_key is not None:
        check_name(idempotency_key, "idempotency_key", IDEMPOTENCY_KEY_MAX_LENGTH)
    tasks = Task.objects.using(alias)
    with transaction.atomic(using=alias):
        row = tasks.filter(id=task_id)
        if connections[alias].features.has_select_for_update:
            row = row.select_for_update()
        else:  # SQLite: a write first takes the database's write lock
            row.update(updated_at=F("updated_at"))
        found = row.values_list("status", "waiting_for", "workflow", "priority").first()
        if found is None:
            raise Task.DoesNotExist(f"Task {task_id} does not exist.")
        status, waiting_for, workflow, priority = found
        if status in FINISHED:
            raise InvalidTransition(
                f"Cannot signal task {task_id}: it is {status}; allowed while pending, running, "
                "waiting or paused.",
                status=status,
            )
        signals = Signal.objects.using(alias)
        if idempotency_key is not None:
            sent = signals.filter(task_id=task_id, idempotency_key=idempotency_key).first()
            if sent is not None:
                return sent
        signal = signals.create(
            task_id=task_id, name=name, payload=payload, idempotency_key=idempotency_key
        )
        waits_for_it = status == TaskStatus.WAITING and waiting_for == name
        if waits_for_it and transitions.WAKE.apply(
            tasks, where={"id": task_id, "waiting_for": name}
        ):
            woken = Task(id=task_id, workflow=workflow, priority=priority)
            woken._state.db = alias
            transitions.tasks_due.send(sender=Task, tasks=[woken])
    return signal


def forget_waits(
    alias: str, task: Task, *, from_start: bool = False, from_step: str | None = None
) -> None:
    """Forget the recorded waits a requeue runs again: all of them, or from a step on."""
    waits = Wait.objects.using(alias).filter(task_id=task.id)
    if from_start:
        waits.delete()
    elif from_step is not None:
        names = [step.name for step in registry.get(task.workflow).steps]
        waits.filter(step_name__in=names[names.index(from_step) :]).delete()
