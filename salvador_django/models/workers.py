"""The workers table: one row per process that runs tasks, kept fresh by its heartbeat."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _

from salvador_django.clock import now_plus
from salvador_django.conf import get_settings

WORKER_NAME_MAX_LENGTH = 200


class WorkerKind(models.TextChoices):
    """What runs the tasks."""

    WORKER = "worker", _("runworkflows")
    POOL_CHILD = "pool child", _("runworkflows pool child")
    CELERY = "celery", _("Celery worker")


def silence_seconds() -> float:
    """How long a worker may go unseen and still count as alive: one lease (it beats
    every third of one; a worker silent for a whole lease has lost its tasks anyway)."""
    return float(get_settings().LEASE_SECONDS)


class WorkerQuerySet(models.QuerySet["WorkerProcess"]):
    def alive(self) -> WorkerQuerySet:
        """The workers seen within :func:`silence_seconds`, on the database's clock."""
        return self.filter(last_seen_at__gte=now_plus(-silence_seconds()))

    def gone(self) -> WorkerQuerySet:
        """The workers not seen for longer than that: processes that died."""
        return self.filter(last_seen_at__lt=now_plus(-silence_seconds()))


class WorkerProcess(models.Model):
    """A process that runs tasks: registered when it starts, seen at each heartbeat,
    removed when it stops. A row not seen for a while is a process that died: it is
    shown as gone, then removed by a later sweep.
    """

    name = models.CharField(_("name"), max_length=WORKER_NAME_MAX_LENGTH, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=WorkerKind.choices)
    host = models.CharField(_("host"), max_length=255)
    pid = models.PositiveIntegerField(_("pid"))
    version = models.CharField(_("version"), max_length=32)
    queue = models.CharField(_("queue"), max_length=200, blank=True)
    concurrency = models.PositiveIntegerField(_("concurrency"), default=1)
    #: The workflows it runs (names); empty: every registered one.
    workflows = models.JSONField(_("workflows"), default=list, blank=True)
    #: What it runs now: ``[{"task": id, "workflow": name, "step": name}, …]``, as of
    #: its last heartbeat.
    running = models.JSONField(_("running now"), default=list, blank=True)
    started_at = models.DateTimeField(_("started at"))
    last_seen_at = models.DateTimeField(_("last seen at"), db_index=True)

    objects: ClassVar[WorkerQuerySet] = WorkerQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        app_label = "salvador"
        verbose_name = _("worker")
        verbose_name_plural = _("workers")
        ordering = ("host", "pid", "name")

    def __str__(self) -> str:
        return self.name
