"""Hourly statistics per workflow: what the admin's charts read instead of the task table.

:func:`salvador_django.rollup.roll_up` writes them from the tasks and step runs that
ended in each closed hour; the hour still open is counted live by the overview.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _

#: The workflow of an hour's totals over every workflow. Written for every hour rolled
#: up, even one without any task: its row says the hour was rolled up.
ALL_WORKFLOWS = ""


class HourlyStats(models.Model):
    """The tasks and step attempts of one workflow that ended in one hour (UTC)."""

    workflow = models.CharField(_("workflow"), max_length=200, blank=True)
    hour = models.DateTimeField(_("hour"), help_text=_("The start of the hour, in UTC."))
    completed = models.PositiveIntegerField(_("tasks completed"), default=0)
    failed = models.PositiveIntegerField(_("tasks failed"), default=0)
    step_attempts = models.PositiveIntegerField(_("step attempts"), default=0)
    step_failures = models.PositiveIntegerField(_("failed step attempts"), default=0)
    #: The step attempts' durations: ``{"<bucket>": count}``, buckets of
    #: :mod:`salvador_django.histogram`.
    durations: Any = models.JSONField(_("step durations"), default=dict, blank=True)
    rolled_at = models.DateTimeField(_("rolled up at"))

    class Meta:
        app_label = "salvador"
        verbose_name = _("hourly statistics")
        verbose_name_plural = _("hourly statistics")
        constraints: ClassVar = [
            # Hour first: the overview and the roll-up read ranges of hours.
            models.UniqueConstraint(fields=["hour", "workflow"], name="salvador_hourly_stats"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow or 'all workflows'} {self.hour:%Y-%m-%d %H}:00"
