"""The task page's table of step attempts, in the order they happened."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.display import (
    bounded_pre_of,
    first_line,
    head,
    head_and_length,
    head_of,
    status_badge,
)
from salvador_django.admin.durations import format_duration, format_moment
from salvador_django.admin.runs import number_runs
from salvador_django.conf import get_settings
from salvador_django.models import StepRun, Task

if TYPE_CHECKING:
    StepRunTabularInline = admin.TabularInline[StepRun, Task]
    StepRunBaseFormSet = BaseInlineFormSet[StepRun, Task, Any]
else:  # the admin classes are generic only in the type stubs
    StepRunTabularInline = admin.TabularInline
    StepRunBaseFormSet = BaseInlineFormSet

COMPENSATION = _("compensation")


RUN_NUMBER = "_salvador_run"  # the attribute the formset numbers each attempt's run in


class StepRunFormSet(StepRunBaseFormSet):
    """Numbers the run of each attempt it shows, from the rows it reads anyway."""

    def get_queryset(self) -> QuerySet[StepRun]:
        queryset = super().get_queryset()  # read once: the forms take its cached rows
        for number, run in number_runs(queryset):
            setattr(run, RUN_NUMBER, number)
        return queryset


class StepRunInline(StepRunTabularInline):
    """Attempts by start time. A requeue numbers a step's attempts from 1 again (the
    engine's attempt count is the retry budget), so the "run" column tells them apart."""

    model = StepRun
    formset = StepRunFormSet
    extra = 0
    max_num = 0
    can_delete = False
    fields = (
        "run_", "index_", "name_", "attempt", "status_", "started_", "duration_", "error_",
        "next_attempt_", "traceback_",
    )  # fmt: skip
    readonly_fields = fields
    ordering = ("started_at", "id")
    verbose_name = _("step attempt")
    verbose_name_plural = _("step attempts")

    def get_queryset(self, request: HttpRequest) -> QuerySet[StepRun]:
        # The table shows no output or state, and the beginning of each error and
        # traceback (an old row's may be megabytes): read no more.
        return (
            super()
            .get_queryset(request)
            .using(get_settings().DATABASE)
            .defer("error", "traceback", "output", "state")
            .annotate(**head("error"), **head_and_length("traceback"))
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("run"))
    def run_(self, run: StepRun) -> int | None:
        number: int | None = getattr(run, RUN_NUMBER, None)
        return number

    @admin.display(description=_("step"))
    def index_(self, run: StepRun) -> int:
        return run.index + 1

    @admin.display(description=_("name"))
    def name_(self, run: StepRun) -> str:
        return f"↩ {run.name} ({COMPENSATION})" if run.compensation else run.name

    @admin.display(description=_("status"))
    def status_(self, run: StepRun) -> SafeString:
        return status_badge(run.status, run.get_status_display())

    @admin.display(description=_("started"))
    def started_(self, run: StepRun) -> SafeString | str:
        return format_moment(run.started_at) or self.get_empty_value_display()

    @admin.display(description=_("duration"))
    def duration_(self, run: StepRun) -> str:
        return format_duration(run.duration)

    @admin.display(description=_("error"))
    def error_(self, run: StepRun) -> str:
        return first_line(head_of(run, "error"))

    @admin.display(description=_("next attempt at"))
    def next_attempt_(self, run: StepRun) -> SafeString | str:
        return format_moment(run.next_attempt_at) or self.get_empty_value_display()

    @admin.display(description=_("traceback"))
    def traceback_(self, run: StepRun) -> SafeString | str:
        if not head_of(run, "traceback"):
            return ""
        return format_html(
            '<details class="salvador-traceback"><summary>{}</summary>{}</details>',
            _("Show traceback"),
            bounded_pre_of(run, "traceback"),
        )
