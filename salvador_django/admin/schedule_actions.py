"""What operators do to schedules from the admin: pause, resume, run now.

The code owns a schedule's definition; the admin owns only these switches. Pause and
resume are conditional updates: of two operators pausing one schedule at once, the
second is told it was paused already. Each change is recorded in the admin history
(``LogEntry``) and reported to the user, with what was skipped and why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from salvador_django.exceptions import ConfigurationError, SalvadorError
from salvador_django.models import Schedule, Task
from salvador_django.scheduling import pause_schedule, resume_schedule, run_schedule_now

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

    ScheduleModelAdmin = admin.ModelAdmin[Schedule]
else:  # the admin classes are generic only in the type stubs
    ScheduleModelAdmin = admin.ModelAdmin

RESUME_HELP = _(
    "Resuming does not run the ticks missed while the schedule was paused: if its next "
    "run is past, it next runs at its first tick after the moment it is resumed."
)


class Skipped(Exception):
    """A schedule an operation leaves alone; the message says why."""


def pause(row: Schedule) -> None:
    """Pause ``row``, unless it is paused already."""
    if not pause_schedule(row, row._state.db):
        raise Skipped(gettext("already paused"))


def resume(row: Schedule) -> None:
    """Resume ``row``, unless it runs already (the ticks missed while paused do not run)."""
    try:
        resumed = resume_schedule(row, row._state.db)
    except ConfigurationError as exc:  # its time zone is missing here, say
        raise Skipped(str(exc)) from exc
    if not resumed:
        raise Skipped(gettext("not paused"))


def run_now(row: Schedule) -> Task:
    """Submit one task of ``row`` now (its ticks are unchanged)."""
    if not row.active:
        raise Skipped(gettext("no longer declared in code"))
    try:
        return run_schedule_now(row, row._state.db)
    except SalvadorError as exc:  # its workflow is not registered here, a body too big
        raise Skipped(str(exc)) from exc


@dataclass(frozen=True)
class Operation:
    """One switch an operator can flip on schedules."""

    name: str
    label: _StrPromise
    done: _StrPromise
    permission: str  # the ModelAdmin's has_<permission>_permission
    apply: Callable[[Schedule], Task | None]
    shown: Callable[[Schedule], bool]  # whether a schedule's page offers it


PAUSE = Operation(
    "pause", _("Pause"), _("paused"), "pause", pause, lambda row: not row.paused
)  # fmt: skip
RESUME = Operation("resume", _("Resume"), _("resumed"), "pause", resume, lambda row: row.paused)
RUN_NOW = Operation(
    "run", _("Run now"), _("submitted"), "run", run_now, lambda row: row.active
)  # fmt: skip
OPERATIONS = {operation.name: operation for operation in (PAUSE, RESUME, RUN_NOW)}


@dataclass
class Report:
    """What an operation did to each schedule it was given."""

    operation: Operation
    done: list[tuple[Schedule, Task | None]] = field(default_factory=list)  # run now: its task
    skipped: Counter[str] = field(default_factory=Counter)

    def message(self, task_url: Callable[[Task], str]) -> SafeString:
        """E.g. "1 paused, 1 skipped: already paused"; run now links each task."""
        parts = [format_html("{} {}", len(self.done), self.operation.done)]
        tasks = [task for _row, task in self.done if task is not None]
        if tasks:
            links = format_html_join(
                ", ",
                '<a href="{}">{} {}</a>',
                ((task_url(task), task.workflow, task.id.hex[:8]) for task in tasks),
            )
            parts[0] = format_html("{} ({})", parts[0], links)
        for reason, count in sorted(self.skipped.items()):
            skipped = ngettext(
                "%(count)d skipped: %(reason)s", "%(count)d skipped: %(reason)s", count
            )
            parts.append(format_html("{}", skipped % {"count": count, "reason": reason}))
        return format_html_join(", ", "{}", ((part,) for part in parts))


def perform(operation: Operation, rows: Iterable[Schedule]) -> Report:
    """Apply ``operation`` to each of ``rows``; a schedule it cannot change is skipped."""
    report = Report(operation)
    for row in rows:
        try:
            task = operation.apply(row)
        except Skipped as exc:
            report.skipped[str(exc)] += 1
            continue
        report.done.append((row, task))
    return report


class ScheduleActionsAdmin(ScheduleModelAdmin):
    """The schedule admin's switches: list actions and buttons on a schedule's page."""

    actions: tuple[str, ...] = ("pause_action", "resume_action", "run_now_action")

    def has_pause_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("salvador.pause_schedule"))

    def has_run_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("salvador.run_schedule"))

    def may(self, request: HttpRequest, operation: Operation) -> bool:
        return bool(getattr(self, f"has_{operation.permission}_permission")(request))

    def operations_for(self, request: HttpRequest, row: Schedule) -> list[Operation]:
        """The buttons of ``row``'s page: what this user may do to it now."""
        return [op for op in OPERATIONS.values() if self.may(request, op) and op.shown(row)]

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.operation_view)
        return [
            path(
                "<path:object_id>/switch/<slug:operation>/", view, name="salvador_schedule_switch"
            ),
            *super().get_urls(),
        ]

    def operation_view(self, request: HttpRequest, object_id: str, operation: str) -> HttpResponse:
        """A schedule page's buttons: apply one operation to one schedule (POST only).

        The permissions are checked before the schedule is looked up: a user refused
        gets 403 whether it exists or not.
        """
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        chosen = OPERATIONS.get(operation)
        if chosen is None:
            raise Http404(f"No operation named {operation!r}.")
        if not self.has_view_permission(request) or not self.may(request, chosen):
            raise PermissionDenied
        row = self.get_object(request, unquote(object_id))
        if row is None:
            raise Http404(f"No schedule with id {object_id!r}.")
        self.apply(request, chosen, [row])
        url = reverse(f"{self.admin_site.name}:salvador_schedule_change", args=[quote(row.pk)])
        return redirect(url)

    def task_url(self, task: Task) -> str:
        return reverse(f"{self.admin_site.name}:salvador_task_change", args=[quote(task.pk)])

    def apply(self, request: HttpRequest, operation: Operation, rows: Iterable[Schedule]) -> None:
        """Apply ``operation``, record it in the admin history, and report to the user."""
        report = perform(operation, rows)
        if request.user.pk is not None:
            for row, task in report.done:
                message = str(operation.label)
                if task is not None:
                    message = gettext("Run now: task %(task)s") % {"task": task.id}
                LogEntry.objects.log_actions(
                    user_id=request.user.pk,
                    queryset=[row],
                    action_flag=CHANGE,
                    change_message=message,
                )
        level = messages.SUCCESS if report.done and not report.skipped else messages.WARNING
        self.message_user(request, report.message(self.task_url), level)

    @admin.action(description=PAUSE.label, permissions=["pause"])
    def pause_action(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self.apply(request, PAUSE, list(queryset))

    @admin.action(description=RESUME.label, permissions=["pause"])
    def resume_action(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self.apply(request, RESUME, list(queryset))

    @admin.action(description=RUN_NOW.label, permissions=["run"])
    def run_now_action(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self.apply(request, RUN_NOW, list(queryset))


__all__ = ["OPERATIONS", "RESUME_HELP", "ScheduleActionsAdmin"]
