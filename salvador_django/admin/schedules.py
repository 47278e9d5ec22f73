"""The schedule admin: the schedules the code declares, and the switches operators own.

The code owns a schedule's definition, so nothing here edits one and none can be
added; the page is read-only. Pause, resume and run now are
:mod:`salvador_django.admin.schedule_actions`. A schedule the code no longer declares
(``active`` false) may be deleted; one still declared would only come back at the
next sync.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.utils import quote
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.display import pretty_json, status_badge
from salvador_django.admin.durations import format_moment
from salvador_django.admin.readonly import ReadOnlyRows
from salvador_django.admin.schedule_actions import RESUME_HELP, ScheduleActionsAdmin
from salvador_django.conf import get_settings
from salvador_django.exceptions import ConfigurationError
from salvador_django.models import Schedule, Task
from salvador_django.schedules import Schedule as Definition
from salvador_django.status import TaskStatus

UPCOMING = 5  # the run times a schedule's page lists
MOMENT_FORMAT = "Y-m-d H:i:s T"
DEFINITION_FIELDS = (
    "name", "workflow", "expression_", "timezone", "catch_up", "jitter", "body_", "meta_",
)  # fmt: skip


def definition_of(row: Schedule) -> Definition | None:
    """``row``'s definition, or None if it is no longer valid here (a time zone missing
    from this machine's database, say): the page still shows what it can."""
    try:
        return row.definition()
    except ConfigurationError:
        return None


def in_zone(moment: datetime, zone_name: str) -> SafeString:
    """``moment`` to the second in the time zone ``zone_name``, named: "2026-06-02
    03:00:00 CEST (Europe/Paris)" (the name left out when the abbreviation is it)."""
    try:
        local = moment.astimezone(ZoneInfo(zone_name))
    except (ValueError, KeyError):  # an unknown zone: ZoneInfoNotFoundError is a KeyError
        local, zone_name = timezone.localtime(moment), ""
    shown = dateformat.format(local, MOMENT_FORMAT)
    if zone_name and zone_name != local.tzname():
        shown = f"{shown} ({zone_name})"
    return format_html('<time datetime="{}">{}</time>', moment.isoformat(), shown)


def upcoming(definition: Definition, after: datetime, count: int = UPCOMING) -> list[datetime]:
    """The ``count`` first ticks of ``definition`` after ``after``, in UTC."""
    ticks: list[datetime] = []
    for _index in range(count):
        after = definition.next_tick(after)
        ticks.append(after)
    return ticks


class ScheduleAdmin(ReadOnlyRows, ScheduleActionsAdmin):
    list_display = ("name", "workflow", "expression_", "next_run", "last_run", "paused", "active")
    list_filter = ("paused", "active", "workflow")
    search_fields = ("name", "workflow")
    search_help_text = _("A schedule's name or its workflow's (a part of it).")
    ordering = ("name",)
    list_per_page = 100
    show_full_result_count = False
    actions = (*ScheduleActionsAdmin.actions, "delete_selected")
    fieldsets = (
        (None, {"fields": DEFINITION_FIELDS[:5]}),
        (
            _("Runs"),
            {
                "fields": ("paused", "active", "next_run", "upcoming_", "last_run"),
                "description": RESUME_HELP,
            },
        ),
        (_("Data"), {"fields": DEFINITION_FIELDS[5:]}),
        (_("Times"), {"fields": ("created_at_", "updated_at_")}),
    )
    readonly_fields = (
        *DEFINITION_FIELDS, "paused", "active", "next_run", "upcoming_", "last_run",
        "created_at_", "updated_at_",
    )  # fmt: skip

    # -- permissions: the code owns the definition ------------------------------------

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Only a schedule the code no longer declares: a declared one comes back."""
        if obj is not None and obj.active:
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(
        description=_("Delete selected schedules no longer declared in code"),
        permissions=["delete"],
    )
    def delete_selected(
        self, request: HttpRequest, queryset: QuerySet[Schedule]
    ) -> HttpResponse | None:
        """Django's confirmation and deletion, for the selected schedules the code no
        longer declares; the others are skipped, and the user told so. (Named as the
        admin's own action, which it replaces: the confirmation page posts that name.)"""
        declared = queryset.filter(active=True).count()
        if declared:
            skipped = ngettext(
                "%(count)d skipped: still declared in code",
                "%(count)d skipped: still declared in code",
                declared,
            )
            self.message_user(request, skipped % {"count": declared}, messages.WARNING)
        removed = queryset.filter(active=False)
        if not removed.exists():
            return None
        return delete_selected(self, request, removed)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        # A schedule declared again since the confirmation page (a deploy) stays.
        Schedule.objects.using(queryset.db).filter(
            pk__in=[row.pk for row in queryset], active=False
        ).delete()

    # -- queries ----------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        """The schedules, with their last task's status read in the same query (the
        task may have been pruned: then it is None)."""
        tasks = Task.objects.filter(pk=OuterRef("last_task_id")).values("status")[:1]
        queryset = super().get_queryset(request).using(get_settings().DATABASE)
        return queryset.annotate(last_task_status=Subquery(tasks))

    # -- columns and fields -----------------------------------------------------------

    @admin.display(description=_("expression"))
    def expression_(self, row: Schedule) -> SafeString:
        definition = definition_of(row)
        described = definition.describe() if definition else gettext("not valid here")
        return format_html("<code>{}</code> — {}", row.expression(), described)

    @admin.display(description=_("next run"), ordering="next_run_at")
    def next_run(self, row: Schedule) -> SafeString | str:
        if not row.active:
            return format_html('— <span class="help">{}</span>', gettext("it no longer runs"))
        shown = in_zone(row.next_run_at, row.timezone)
        if row.paused:
            return format_html('{} <span class="salvador-note">{}</span>', shown, gettext("paused"))
        return shown

    @admin.display(description=_("last run"), ordering="last_run_at")
    def last_run(self, row: Schedule) -> SafeString | str:
        if row.last_run_at is None:
            return self.get_empty_value_display()
        shown = in_zone(row.last_run_at, row.timezone)
        if row.last_task_id is None:
            return shown
        status = getattr(row, "last_task_status", None)
        if status is None:
            note = gettext("task %(task)s deleted") % {"task": row.last_task_id.hex[:8]}
            return format_html('{} · <span class="help">{}</span>', shown, note)
        url = reverse(
            f"{self.admin_site.name}:salvador_task_change", args=[quote(row.last_task_id)]
        )
        badge = status_badge(status, TaskStatus(status).label)
        return format_html(
            '{} · <a href="{}" class="salvador-last-task">{}</a> {}',
            shown, url, row.last_task_id.hex[:8], badge,
        )  # fmt: skip

    @admin.display(description=_("next runs"))
    def upcoming_(self, row: Schedule) -> SafeString | str:
        definition = definition_of(row)
        if definition is None:
            return gettext("Its definition is not valid here.")
        ticks = upcoming(definition, timezone.now())
        items = format_html_join("", "<li>{}</li>", ((in_zone(t, row.timezone),) for t in ticks))
        return format_html('<ol class="salvador-upcoming">{}</ol>', items)

    @admin.display(description=_("body"))
    def body_(self, row: Schedule) -> SafeString:
        return pretty_json(row.body)

    @admin.display(description=_("meta"))
    def meta_(self, row: Schedule) -> SafeString:
        return pretty_json(row.meta)

    @admin.display(description=_("created at"))
    def created_at_(self, row: Schedule) -> SafeString | None:
        return format_moment(row.created_at)

    @admin.display(description=_("updated at"))
    def updated_at_(self, row: Schedule) -> SafeString | None:
        return format_moment(row.updated_at)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Schedule | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["schedule_operations"] = self.operations_for(request, obj)
            context["resume_help"] = RESUME_HELP
        return super().render_change_form(request, context, add, change, form_url, obj)


__all__ = ["ScheduleAdmin"]
