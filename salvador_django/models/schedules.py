"""The schedules table: one row per schedule declared in code, ticked by every worker."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from salvador_django.models.indexes import PartialIndex
from salvador_django.schedules import CATCH_UP
from salvador_django.schedules import Schedule as Definition

SCHEDULE_NAME_MAX_LENGTH = 150


class Schedule(models.Model):
    """A schedule as the workers tick it: the code owns its definition (copied here when
    workers start), the admin its switches (paused, run now).

    ``active`` is false for a schedule the code no longer declares: it is kept (its
    history, its last task) and never ticks until it is declared again.
    """

    name = models.CharField(_("name"), max_length=SCHEDULE_NAME_MAX_LENGTH, unique=True)
    workflow = models.CharField(_("workflow"), max_length=200)
    cron = models.CharField(_("cron expression"), max_length=200, blank=True)
    every = models.DurationField(_("interval"), null=True, blank=True)
    timezone = models.CharField(_("time zone"), max_length=64, default="UTC")
    body = models.JSONField(_("body"), null=True, blank=True)
    meta = models.JSONField(_("meta"), default=dict, blank=True)
    catch_up = models.CharField(
        _("catch up"), max_length=8, default="latest", choices=[(c, c) for c in CATCH_UP]
    )
    jitter = models.DurationField(_("jitter"), null=True, blank=True)
    next_run_at = models.DateTimeField(_("next run at"))
    last_run_at = models.DateTimeField(_("last run at"), null=True, blank=True)
    last_task = models.ForeignKey(
        "salvador.Task",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("last task"),
        db_constraint=False,  # tasks are pruned in bulk: the link may outlive its task
    )
    paused = models.BooleanField(_("paused"), default=False)
    active = models.BooleanField(_("declared in code"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        app_label = "salvador"
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        ordering = ("name",)
        indexes: ClassVar = [
            # What a sweep ticks: the due schedules, soonest first. One query.
            PartialIndex(
                fields=["next_run_at"],
                name="salvador_schedule_due",
                where=Q(active=True, paused=False),
                full_fields=["active", "paused", "next_run_at"],
            ),
        ]
        permissions = (
            ("pause_schedule", _("Can pause and resume schedules")),
            ("run_schedule", _("Can run schedules now")),
        )

    def __str__(self) -> str:
        return self.name

    def definition(self) -> Definition:
        """The row as a :class:`salvador_django.Schedule` (to compute its ticks)."""
        return Definition(
            self.cron or None, self.every, name=self.name, timezone=self.timezone,
            body=self.body, meta=self.meta or None, catch_up=self.catch_up,  # type: ignore[arg-type]
            jitter=self.jitter,
        )  # fmt: skip

    def expression(self) -> str:
        """The cron expression, or the interval ("every 300s"), read from the row alone:
        so a row this host cannot tick (its time zone unknown here) still shows it."""
        if self.cron or self.every is None:
            return self.cron
        return f"every {self.every.total_seconds():g}s"

    def fields_of(self) -> dict[str, Any]:
        """The fields the code owns."""
        return {name: getattr(self, name) for name in CODE_FIELDS}


#: The fields copied from the code (the rest belong to the ticks and the admin).
CODE_FIELDS = ("workflow", "cron", "every", "timezone", "body", "meta", "catch_up", "jitter")
