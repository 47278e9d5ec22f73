"""The workers page: every process that runs tasks, alive or gone, busy or idle, and
what each runs now (as of its last heartbeat), linked to the tasks.

The rows are the workers' own (they register, beat and leave), so nothing here adds
or edits one. A gone worker's row (a process that died without leaving) may be deleted;
a live one would only come back at its next heartbeat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.utils import quote
from django.db.models import BooleanField, Case, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.display import shorten
from salvador_django.admin.durations import format_duration, format_moment
from salvador_django.admin.readonly import ReadOnlyRows
from salvador_django.clock import now_plus
from salvador_django.conf import get_settings
from salvador_django.models import WorkerProcess
from salvador_django.models.workers import WorkerQuerySet, silence_seconds

if TYPE_CHECKING:
    WorkerModelAdmin = admin.ModelAdmin[WorkerProcess]
else:  # the admin classes are generic only in the type stubs
    WorkerModelAdmin = admin.ModelAdmin

STEP_LENGTH = 40  # the characters of a step's name shown


class AliveFilter(admin.SimpleListFilter):
    """Alive (seen within a lease) or gone."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("alive", _("alive")), ("gone", _("gone"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "alive":
            return queryset.alive()  # type: ignore[attr-defined, no-any-return]
        if self.value() == "gone":
            return queryset.gone()  # type: ignore[attr-defined, no-any-return]
        return queryset


class WorkerProcessAdmin(ReadOnlyRows, WorkerModelAdmin):
    list_display = (
        "name", "state", "busy", "last_seen", "host", "pid", "version", "kind", "queue",
        "workflows_", "running_",
    )  # fmt: skip
    list_filter = (AliveFilter, "kind")
    search_fields = ("name", "host")
    search_help_text = _("A worker's name or host (a part of it).")
    ordering = ("host", "pid", "name")
    list_per_page = 100
    show_full_result_count = False
    actions = ("delete_selected",)
    fields = (
        "name", "state", "busy", "kind", "host", "pid", "version", "queue", "concurrency",
        "workflows_", "running_", "started_at_", "last_seen_at_",
    )  # fmt: skip
    readonly_fields = fields

    # -- permissions: the workers own their rows --------------------------------------

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Only a gone worker's row: a live worker's comes back at its next heartbeat."""
        if obj is not None and getattr(obj, "alive", False):
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description=_("Delete selected gone workers"), permissions=["delete"])
    def delete_selected(
        self, request: HttpRequest, queryset: QuerySet[WorkerProcess]
    ) -> HttpResponse | None:
        """Django's confirmation and deletion, for the selected workers that are gone;
        live ones are skipped, and the user told so. (Named as the admin's own action,
        which it replaces: the confirmation page posts that name.)"""
        alive = cast(WorkerQuerySet, queryset).alive().count()
        if alive:
            skipped = ngettext(
                "%(count)d skipped: still alive", "%(count)d skipped: still alive", alive
            )
            self.message_user(request, skipped % {"count": alive}, messages.WARNING)
        gone = cast(WorkerQuerySet, queryset).gone()
        if not gone.exists():
            return None
        return delete_selected(self, request, gone)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WorkerProcess]) -> None:
        # A worker seen again since the confirmation page (it was only slow) stays.
        WorkerProcess.objects.using(queryset.db).filter(
            pk__in=[row.pk for row in queryset]
        ).gone().delete()

    def delete_model(self, request: HttpRequest, obj: WorkerProcess) -> None:
        self.delete_queryset(request, WorkerProcess.objects.using(obj._state.db).filter(pk=obj.pk))

    # -- queries ----------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[WorkerProcess]:
        """The workers, each marked alive or gone on the database's clock."""
        queryset = super().get_queryset(request).using(get_settings().DATABASE)
        return queryset.annotate(
            alive=Case(
                When(last_seen_at__gte=now_plus(-silence_seconds()), then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            )
        )

    # -- columns and fields -----------------------------------------------------------

    @admin.display(description=_("state"), ordering="last_seen_at")
    def state(self, row: WorkerProcess) -> SafeString:
        if getattr(row, "alive", False):
            return format_html(
                '<span class="salvador-badge salvador-alive">{}</span>', gettext("alive")
            )
        return format_html('<span class="salvador-badge salvador-gone">{}</span>', gettext("gone"))

    @admin.display(description=_("busy"))
    def busy(self, row: WorkerProcess) -> SafeString:
        """The tasks it runs of those it may run at once: "3 / 4", "idle 0 / 4"."""
        running = len(row.running or [])
        if running:
            return format_html("{} / {}", running, row.concurrency)
        idle = gettext("idle")
        return format_html('<span class="help">{}</span> 0 / {}', idle, row.concurrency)

    @admin.display(description=_("last seen"), ordering="last_seen_at")
    def last_seen(self, row: WorkerProcess) -> SafeString:
        since = timezone.now() - row.last_seen_at
        ago = gettext("%(time)s ago") % {"time": format_duration(since)}
        return format_html(
            '<time datetime="{}" title="{}">{}</time>',
            row.last_seen_at.isoformat(),
            row.last_seen_at.isoformat(sep=" ", timespec="seconds"),
            ago,
        )

    @admin.display(description=_("workflows"))
    def workflows_(self, row: WorkerProcess) -> str:
        return ", ".join(row.workflows or []) or gettext("all")

    @admin.display(description=_("running now"))
    def running_(self, row: WorkerProcess) -> SafeString | str:
        """Each task it runs, linked: its workflow, step and short id."""
        entries = [entry for entry in row.running or [] if isinstance(entry, dict)]
        if not entries:
            return "—"
        items = []
        for entry in entries:
            task = str(entry.get("task", ""))
            url = reverse(f"{self.admin_site.name}:salvador_task_change", args=[quote(task)])
            label = (
                f"{entry.get('workflow', '')} · {shorten(str(entry.get('step', '')), STEP_LENGTH)}"
            )
            items.append((url, label, task.replace("-", "")[:8]))
        rows = format_html_join("", '<li><a href="{}">{} <code>{}</code></a></li>', items)
        return format_html('<ul class="salvador-running">{}</ul>', rows)

    @admin.display(description=_("started at"))
    def started_at_(self, row: WorkerProcess) -> SafeString | None:
        return format_moment(row.started_at)

    @admin.display(description=_("last seen at"))
    def last_seen_at_(self, row: WorkerProcess) -> SafeString | None:
        return format_moment(row.last_seen_at)


__all__ = ["WorkerProcessAdmin"]
