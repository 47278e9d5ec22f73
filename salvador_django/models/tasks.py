"""Tasks and the record of their step attempts."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, ClassVar

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _

from salvador_django.conf import get_settings
from salvador_django.exceptions import NoResult
from salvador_django.models.indexes import PartialIndex, PartialUniqueConstraint
from salvador_django.models.operations import Operations
from salvador_django.models.waits import (
    CHILD_KEY_MAX_LENGTH,
    IDEMPOTENCY_KEY_MAX_LENGTH,
    SIGNAL_NAME_MAX_LENGTH,
    Waiting,
)
from salvador_django.queries import TaskQuerySet
from salvador_django.status import (
    CompensationStatus,
    StepRunStatus,
    TaskStatus,
)


class Task(Operations, Waiting, models.Model):
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

    return_value: Any = models.JSONField(
        _("result"),
        null=True,
        blank=True,
        help_text=_("The last step's return value, stored when the task completes."),
    )
    trace_context: Any = models.JSONField(
        _("trace context"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "The OpenTelemetry context the task was submitted in (W3C trace context): its "
            "steps' spans are its children. Empty when tracing was off."
        ),
    )
    # The tree of tasks: a child started by a step of its parent (task.start_child).
    # No index of its own: salvador_task_child_key (parent, ...) serves the foreign key.
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="children",
        db_index=False,
    )
    parent_step = models.CharField(
        _("parent step"),
        max_length=200,
        blank=True,
        db_default="",
        help_text=_("The step of the parent that started this child."),
    )
    child_key = models.CharField(  # noqa: DJ001 - NULL: ignored by the constraint
        _("child key"),
        max_length=CHILD_KEY_MAX_LENGTH,
        null=True,
        blank=True,
        help_text=_("Unique per parent and step: a step that runs again starts no second child."),
    )
    detached = models.BooleanField(
        _("detached"),
        db_default=False,
        help_text=_("May outlive its parent: not cancelled when the parent ends."),
    )
    awaited = models.BooleanField(
        _("awaited"),
        db_default=False,
        help_text=_("A wait of its parent waits (or waited) for it to finish."),
    )
    has_children = models.BooleanField(_("has children"), db_default=False)
    children_left = models.PositiveIntegerField(
        _("children left"),
        null=True,
        blank=True,
        help_text=_("While waiting for children: how many of them have not finished."),
    )

    progress: Any = models.JSONField(
        _("progress"),
        default=dict,
        db_default={},  # rows written without it (a raw insert, a deploy's old code): empty
        blank=True,
        help_text=_(
            "A graph workflow's steps done (completed or skipped, in the order they ended), "
            "skipped, and failed attempts by step. Empty for a straight line."
        ),
    )

    objects: ClassVar[TaskQuerySet] = TaskQuerySet.as_manager()  # type: ignore[assignment]

    #: The completed steps' return values, by name, once read (see :attr:`outputs`).
    _outputs: dict[str, Any] | None = None

    #: While a step runs: the ``time.monotonic()`` by which a step with a timeout
    #: should return. Long-running step code can check it to stop early.
    deadline: float | None = None

    class Meta:
        app_label = "salvador"
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        indexes: ClassVar = [
            # Partial indexes (the rows a query reads) where the database has them; on
            # MySQL/MariaDB the same columns led by the condition's (indexes.py).
            PartialIndex(
                fields=["-priority", "run_after"],
                name="salvador_task_due",
                where=Q(status=TaskStatus.PENDING),
                full_fields=["status", "-priority", "run_after"],
            ),
            PartialIndex(
                fields=["lease_expires_at"],
                name="salvador_task_lease",
                where=Q(status=TaskStatus.RUNNING),
                full_fields=["status", "lease_expires_at"],
            ),
            models.Index(fields=["-created_at"], name="salvador_task_created"),
            # The admin's filters, newest first. Completed tasks (most rows) are
            # left out: the created index finds them quickly enough.
            PartialIndex(
                fields=["status", "-created_at"],
                name="salvador_task_triage",
                where=~Q(status=TaskStatus.COMPLETED),
                full_fields=["status", "-created_at"],
            ),
            models.Index(fields=["workflow", "-created_at"], name="salvador_task_workflow"),
            # The admin's "failed step" filter, over failed tasks only.
            PartialIndex(
                fields=["failed_step", "-finished_at"],
                name="salvador_task_failed_step",
                where=Q(status=TaskStatus.FAILED),
                full_fields=["status", "failed_step", "-finished_at"],
            ),
            PartialIndex(
                fields=["-finished_at"],
                name="salvador_task_failures",
                where=Q(status=TaskStatus.FAILED),
                full_fields=["status", "-finished_at"],
            ),
            # The hourly roll-up: the tasks that ended in an hour.
            PartialIndex(
                fields=["finished_at"],
                name="salvador_task_finished",
                where=Q(finished_at__isnull=False),
                full_fields=["finished_at"],
            ),
            # The timers of waiting tasks, soonest first: what the timer loop fires.
            PartialIndex(
                fields=["wake_at"],
                name="salvador_task_timers",
                where=Q(status=TaskStatus.WAITING),
                full_fields=["status", "wake_at"],
            ),
        ]
        permissions = (
            ("requeue_task", _("Can requeue tasks")),
            ("cancel_task", _("Can cancel tasks")),
            ("signal_task", _("Can send signals to tasks")),
            ("pause_task", _("Can pause and resume tasks")),
        )
        constraints: ClassVar = [
            PartialUniqueConstraint(
                # The key first, so that the admin's search by key alone uses it too.
                fields=["idempotency_key", "workflow"],
                where=Q(idempotency_key__isnull=False),
                name="salvador_task_idempotency_key",
            ),
            PartialUniqueConstraint(
                fields=["parent", "parent_step", "child_key"],
                where=Q(parent__isnull=False),
                name="salvador_task_child_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow} {self.id} ({self.status})"

    def step_key(self) -> str:
        """A stable ``"<task id>:<step name>"`` to use as an external idempotency key."""
        return f"{self.id}:{self.step_name}"

    def _alias(self) -> str:
        return self._state.db or get_settings().DATABASE

    @property
    def outputs(self) -> dict[str, Any]:
        """The return values of the task's completed steps, by step name.

        Read from the step runs once per run of a step (a running graph task's are
        kept current by the engine). A skipped step has none; a step's value is the
        one of its last completed attempt.
        """
        if self._outputs is None:
            self._outputs = _completed_outputs(self)
        return self._outputs

    @property
    def result(self) -> Any:
        """The return value of the task's last step: raises :class:`NoResult` until it completed."""
        if self.status == TaskStatus.COMPLETED:
            return self.return_value
        why = {
            TaskStatus.FAILED: f"it failed at step {self.failed_step or self.step_name!r}: "
            f"{self.error}",
            TaskStatus.CANCELLED: "it was cancelled",
        }.get(self.status, f"it is {self.status}, not completed yet")  # type: ignore[call-overload]
        raise NoResult(
            f"Task {self.id} ({self.workflow}) has no result: {why}.", status=self.status
        )

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


def _completed_outputs(task: Task) -> dict[str, Any]:
    """What :attr:`Task.outputs` reads: the outputs of the steps the task completed."""
    runs = StepRun.objects.using(task._alias()).filter(
        task_id=task.id, compensation=False, status=StepRunStatus.COMPLETED
    )
    done = task.progress.get("done") if task.progress else None
    if done is None:
        runs = runs.filter(index__lt=task.step)  # a straight line: the steps before this one
    found = dict(runs.order_by("id").values_list("name", "output"))
    if done is not None:
        skipped = set(task.progress.get("skipped", ()))
        found = {name: found.get(name) for name in done if name not in skipped}
    return found


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
            # The hourly roll-up: the attempts that ended in an hour. Written in time
            # order, so each insert appends to the index's last page.
            models.Index(fields=["finished_at"], name="salvador_steprun_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.attempt} ({self.status})"

    @property
    def duration(self) -> timedelta:
        return self.finished_at - self.started_at
