"""The task page's table of step attempts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.display import first_line, status_badge
from salvador_django.admin.durations import format_duration
from salvador_django.conf import get_settings
from salvador_django.models import StepRun, Task

if TYPE_CHECKING:
    StepRunTabularInline = admin.TabularInline[StepRun, Task]
else:  # the admin classes are generic only in the type stubs
    StepRunTabularInline = admin.TabularInline

COMPENSATION = _("compensation")


class StepRunInline(StepRunTabularInline):
    model = StepRun
    extra = 0
    max_num = 0
    can_delete = False
    fields = (
        "index_", "name_", "attempt", "status_", "duration_", "error_", "next_attempt_at",
        "traceback_",
    )  # fmt: skip
    readonly_fields = fields
    ordering = ("index", "attempt", "started_at")
    verbose_name = _("step attempt")
    verbose_name_plural = _("step attempts")

    def get_queryset(self, request: HttpRequest) -> QuerySet[StepRun]:
        return super().get_queryset(request).using(get_settings().DATABASE)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("step"))
    def index_(self, run: StepRun) -> int:
        return run.index + 1

    @admin.display(description=_("name"))
    def name_(self, run: StepRun) -> str:
        return f"↩ {run.name} ({COMPENSATION})" if run.compensation else run.name

    @admin.display(description=_("status"))
    def status_(self, run: StepRun) -> SafeString:
        return status_badge(run.status, run.get_status_display())

    @admin.display(description=_("duration"))
    def duration_(self, run: StepRun) -> str:
        return format_duration(run.duration)

    @admin.display(description=_("error"))
    def error_(self, run: StepRun) -> str:
        return first_line(run.error)

    @admin.display(description=_("traceback"))
    def traceback_(self, run: StepRun) -> SafeString | str:
        if not run.traceback:
            return ""
        return format_html(
            '<details class="salvador-traceback"><summary>{}</summary>'
            '<pre class="salvador-pre">{}</pre></details>',
            _("Show traceback"),
            run.traceback,
        )
