"""The task page's fields of waits: what the task waits for, and its waits, undelivered
signals and events (read by :mod:`salvador_django.admin.waits`)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.durations import format_moment
from salvador_django.admin.task_actions import TaskModelAdmin
from salvador_django.admin.waits import json_head_of, read_waits, waiting_for
from salvador_django.models import Task
from salvador_django.status import TaskStatus

SUSPENDED = (TaskStatus.WAITING, TaskStatus.PAUSED)
WAITS_FIELDSET = (_("Waits, signals and events"), {"fields": ("waits_", "signals_", "events_")})


class TaskWaitsAdmin(TaskModelAdmin):
    """The fields of waits, shown only on the pages of tasks that have some."""

    def get_fieldsets(self, request: HttpRequest, obj: Task | None = None) -> Any:
        """Without "waits for" unless the task waits or is paused, and without the waits,
        signals and events when it has none."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        shown: list[Any] = []
        for name, options in fieldsets:
            fields = options["fields"]
            if obj.status not in SUSPENDED:
                fields = tuple(field for field in fields if field != "waiting_for_")
            shown.append((name, {**options, "fields": fields}))
            if "timeline" in fields and (obj.status in SUSPENDED or read_waits(obj)):
                shown.append(WAITS_FIELDSET)
        return shown

    @admin.display(description=_("waits for"))
    def waiting_for_(self, task: Task) -> SafeString | str:
        return waiting_for(task) or "—"

    @admin.display(description=_("waits"))
    def waits_(self, task: Task) -> str:
        waits = read_waits(task).waits
        rows = [
            (
                wait,
                format_moment(wait.until) or gettext("no timeout"),
                format_moment(wait.started_at),
                format_moment(wait.finished_at) or "—",
            )
            for wait in waits.rows
        ]
        context = {"rows": rows, "note": waits.note("latest")}
        return render_to_string("admin/salvador/task/waits.html", context)

    @admin.display(description=_("undelivered signals"))
    def signals_(self, task: Task) -> str:
        signals = read_waits(task).signals
        rows = [
            (signal, json_head_of(signal, "payload"), format_moment(signal.sent_at))
            for signal in signals.rows
        ]
        context = {"rows": rows, "note": signals.note("first")}
        return render_to_string("admin/salvador/task/signals.html", context)

    @admin.display(description=_("events"))
    def events_(self, task: Task) -> str:
        events = read_waits(task).events
        rows = [
            (event, json_head_of(event, "value"), format_moment(event.updated_at))
            for event in events.rows
        ]
        context = {"rows": rows, "note": events.note("first")}
        return render_to_string("admin/salvador/task/events.html", context)
