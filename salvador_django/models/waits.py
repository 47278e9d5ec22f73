"""What tasks wait for and publish: signals sent to them, their steps' waits, their events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import connections, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _

from salvador_django import transitions
from salvador_django.conf import get_settings
from salvador_django.exceptions import InvalidTransition, NotInStep, PayloadError
from salvador_django.links import DEFAULT_LINK_AGE, signal_path
from salvador_django.models.indexes import PartialIndex, PartialUniqueConstraint
from salvador_django.payloads import check_json, text_problem
from salvador_django.registry import registry
from salvador_django.status import FINISHED, TaskStatus, WaitKind, WaitOutcome

if TYPE_CHECKING:
    from salvador_django.models.tasks import Task

IDEMPOTENCY_KEY_MAX_LENGTH = 255
SIGNAL_NAME_MAX_LENGTH = 200
EVENT_KEY_MAX_LENGTH = 200
CHILD_KEY_MAX_LENGTH = 200


class Waiting:
    """What a task does about waiting: ``Task``'s methods for waits, signals and pause.

    The step-side calls (:meth:`wait_for`, :meth:`sleep`, :meth:`sleep_until`,
    :meth:`set_event`) hand over to the engine's record of the running step; the
    others are operators' moves.
    """

    if TYPE_CHECKING:  # given by Task
        id: Any
        objects: ClassVar[Any]

        def _alias(self) -> str: ...
        def refresh_from_db(self, *args: Any, **kwargs: Any) -> None: ...

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

    def start_child(
        self,
        workflow: Any,
        body: Any = None,
        *,
        key: str | None = None,
        meta: dict[str, str] | None = None,
        priority: int | None = None,
        run_after: datetime | None = None,
        detached: bool = False,
    ) -> Task:
        """In a step: start a child task of ``workflow`` (a workflow or its name).

        Written with the step's next commit (its checkpoint, or the wait it stops at),
        and started then. Idempotent on (this task, this step, ``key``): ``key``
        defaults to the call's position in the step ("#1", "#2", ...), so a step that
        runs again starts no second child. Its priority defaults to this task's. When
        this task ends, its unfinished children are cancelled, unless ``detached``.
        Bad input raises :class:`~salvador_django.exceptions.InvalidChild`.
        """
        return self._in_step("start_child").children.start_child(  # type: ignore[no-any-return]
            workflow,
            body,
            key=key,
            meta=meta,
            priority=priority,
            run_after=run_after,
            detached=detached,
        )

    def wait_for_children(
        self,
        children: Any = None,
        *,
        timeout: float | timedelta | None = None,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """In a step: wait until ``children`` (default: all this step started) finish.

        The task waits holding no worker; the commit that finishes the last of them
        makes it due. Returns their results in the order they were started. A failed
        or cancelled child raises :class:`~salvador_django.exceptions.ChildFailed`,
        unless ``return_exceptions`` (its entry is then that exception). With
        ``timeout``, raises :class:`~salvador_django.exceptions.WaitTimeout` once it passes.
        """
        return self._in_step("wait_for_children").children.wait_for_children(  # type: ignore[no-any-return]
            children, timeout=timeout, return_exceptions=return_exceptions
        )

    def map(self, workflow: Any, bodies: Any, *, keys: Any = None) -> list[Any]:
        """In a step: start one child of ``workflow`` per body, wait for all; their results."""
        return self._in_step("map").children.map(workflow, bodies, keys=keys)  # type: ignore[no-any-return]

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
                [transitions.PAUSE, transitions.REQUEST_PAUSE],
                type(self).objects.using(alias),
                self.id,
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
                [transitions.RESUME, transitions.WITHDRAW_PAUSE],
                type(self).objects.using(alias),
                self.id,
            )
            self.refresh_from_db(using=alias)
            if move is transitions.RESUME:
                transitions.tasks_due.send(sender=type(self), tasks=[self])

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


class Signal(models.Model):
    """A signal sent to a task: kept until a ``wait_for`` of its name takes it."""

    task = models.ForeignKey("salvador.Task", on_delete=models.CASCADE, related_name="signals")
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
            PartialIndex(
                fields=["task", "name", "id"],
                name="salvador_signal_undelivered",
                where=Q(consumed_at__isnull=True),
                full_fields=["task", "name", "consumed_at", "id"],
            ),
        ]
        constraints: ClassVar = [
            PartialUniqueConstraint(
                fields=["task", "idempotency_key"],
                where=Q(idempotency_key__isnull=False),
                name="salvador_signal_idempotency_key",
            ),
        ]

    #: Not a field: whether the call that returned it stored it (False: an earlier
    #: signal with the same idempotency key, returned instead).
    created: bool = True

    def __str__(self) -> str:
        return f"{self.name} to {self.task_id}"


class Wait(models.Model):
    """One wait of one step, by its position among the step's waits.

    Open (no ``outcome``) while the task waits there; once it ended, a replay of the
    step returns the same result at once.
    """

    # No index of its own: salvador_wait_position (task, ...) serves the foreign key.
    task = models.ForeignKey(
        "salvador.Task", on_delete=models.CASCADE, related_name="waits", db_index=False
    )
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
    task = models.ForeignKey(
        "salvador.Task", on_delete=models.CASCADE, related_name="events", db_index=False
    )
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
    task_model: type[Task] = Signal._meta.get_field("task").related_model  # type: ignore[assignment]
    tasks = task_model.objects.using(alias)
    with transaction.atomic(using=alias):
        row = tasks.filter(id=task_id)
        if connections[alias].features.has_select_for_update:
            row = row.select_for_update()
        else:  # SQLite: a write first takes the database's write lock
            row.update(updated_at=F("updated_at"))
        found = row.values_list("status", "waiting_for", "workflow", "priority").first()
        if found is None:
            raise task_model.DoesNotExist(f"Task {task_id} does not exist.")
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
                sent.created = False
                return sent
        signal = signals.create(
            task_id=task_id, name=name, payload=payload, idempotency_key=idempotency_key
        )
        signal.created = True
        waits_for_it = status == TaskStatus.WAITING and (
            waiting_for == name or _open_signal_wait(alias, task_id, name)
        )
        if waits_for_it and transitions.WAKE.apply(tasks, where={"id": task_id}):
            woken = task_model(id=task_id, workflow=workflow, priority=priority)
            woken._state.db = alias
            transitions.tasks_due.send(sender=task_model, tasks=[woken])
    return signal


def _open_signal_wait(alias: str, task_id: Any, name: str) -> bool:
    """Whether a step of the task waits for signal ``name`` (one of a graph's branches)."""
    waits = Wait.objects.using(alias).filter(task_id=task_id, kind=WaitKind.SIGNAL, name=name)
    return waits.filter(outcome=WaitOutcome.OPEN).exists()


def forget_waits(
    alias: str, task: Any, *, from_start: bool = False, from_step: str | None = None
) -> None:
    """Forget the recorded waits a requeue runs again: all of them, or from a step on."""
    waits = Wait.objects.using(alias).filter(task_id=task.id)
    if from_start:
        waits.delete()
    elif from_step is not None:
        graph = registry.get(task.workflow).graph
        names = list(graph.names)
        again = (
            graph.downstream([from_step]) if not graph.linear else names[names.index(from_step) :]
        )
        waits.filter(step_name__in=list(again)).delete()
