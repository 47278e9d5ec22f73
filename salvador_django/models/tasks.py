"""Tasks and the record of their step attempts."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, ClassVar

from django.db import connections, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _

from salvador_django import transitions
from salvador_django.conf import get_settings
from salvador_django.models.waits import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    SIGNAL_NAME_MAX_LENGTH,
    Waiting,
    forget_waits,
)
from salvador_django.queries import TaskQuerySet
from salvador_django.registry import registry
from salvador_django.status import (
    CompensationStatus,
    StepRunStatus,
    TaskStatus,
)


class Task(Waiting, models.Model):
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
            # A compensated task runs again from its first step: as from the start.
            compensated = tasks.filter(id=self.id, compensation=CompensationStatus.COMPLETED)
            from_start = from_start or (move is transitions.REQUEUE and compensated.exists())
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
        row = tasks.filter(id=self.id)
        if connections[tasks.db].features.has_select_for_update:
            row = row.select_for_update()  # no step may complete between this and the move
        step = row.values_list("step", flat=True).first()
        if not step or self.workflow not in registry.names():
            return False
        return any(s.compensate is not None for s in registry.get(self.workflow).steps[:step])

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
