"""The task admin: the list operators triage from and the detail page.

The actions and buttons are :mod:`salvador_django.admin.task_actions`; the table of
step attempts is :mod:`salvador_django.admin.steps`; what a task waits for, its waits,
signals and events are :mod:`salvador_django.admin.task_waits`; its parent, children
and result are :mod:`salvador_django.admin.task_tree`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.db.models import F, Func, Q, QuerySet, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.display import (
    beginning,
    bounded_pre,
    first_line,
    head,
    head_of,
    pretty_json,
    status_badge,
)
from salvador_django.admin.durations import format_moment
from salvador_django.admin.filters import (
    FailedStepFilter,
    HasParentFilter,
    ParentFilter,
    WorkflowFilter,
    step_names,
)
from salvador_django.admin.pagination import CappedCountPaginator
from salvador_django.admin.readonly import ReadOnlyRows
from salvador_django.admin.steps import StepRunInline
from salvador_django.admin.stuck import StuckFilter
from salvador_django.admin.task_actions import TaskActionsAdmin
from salvador_django.admin.task_graph import TaskGraphAdmin
from salvador_django.admin.task_tree import TaskTreeAdmin
from salvador_django.admin.task_waits import TaskWaitsAdmin
from salvador_django.admin.timeline import build_timeline
from salvador_django.admin.waits import read_waits
from salvador_django.conf import get_settings
from salvador_django.models import Task
from salvador_django.registry import registry
from salvador_django.status import TaskStatus
from salvador_django.tasks.names import is_django_task

HISTORY_LENGTH = 20
SHORT_ID = re.compile(r"[0-9a-f]{8}")  # the list's task column
META_KEY = re.compile(r"[A-Za-z0-9_.-]+")  # a meta key searchable as key=value
SEARCH_LENGTH = 500  # the longest search accepted
CANCEL_NOTE = _("cancel requested")
PAUSE_NOTE = _("pause requested")
QUICK_FILTERS = (
    TaskStatus.FAILED, TaskStatus.RUNNING, TaskStatus.PENDING, TaskStatus.WAITING,
    TaskStatus.PAUSED,
)  # fmt: skip
TIMELINE_FIELDS = (
    "task", "compensation", "index", "name", "attempt", "status", "started_at", "finished_at",
)  # fmt: skip


class MetaValue(Func):
    """The value under one top-level ``key`` of ``meta``, as text (SQLite's JSON path).

    The key is quoted in the path, a parameter, so it is a key, never an array index,
    a nested path or a lookup; META_KEY admits no character that would need escaping.
    """

    function = "JSON_EXTRACT"
    output_field = TextField()

    def __init__(self, key: str) -> None:
        super().__init__(F("meta"), Value(f'$."{key}"'))


def meta_equals(queryset: QuerySet[Task], key: str, value: str) -> QuerySet[Task]:
    """The tasks of ``queryset`` whose meta holds ``value`` under ``key``.

    Containment (``meta @> {key: value}`` on PostgreSQL) where the database has it,
    else the value read at the key's JSON path (SQLite).
    """
    if connections[queryset.db].features.supports_json_field_contains:
        return queryset.filter(meta__contains={key: value})
    return queryset.alias(meta_value=MetaValue(key)).filter(meta_value=value)


def moment_of(field: str) -> Callable[[Any, Task], SafeString | str]:
    """A read-only field showing the task's datetime ``field`` to the second."""

    label = getattr(Task._meta.get_field(field), "verbose_name", field)

    @admin.display(description=label)
    def show(model_admin: Any, task: Task) -> SafeString | str:
        return format_moment(getattr(task, field)) or model_admin.get_empty_value_display()

    return show


class TaskAdmin(ReadOnlyRows, TaskTreeAdmin, TaskWaitsAdmin, TaskGraphAdmin, TaskActionsAdmin):
    list_display = (
        "short_id",
        "workflow_",
        "status_",
        "progress_",
        "failed_step_",
        "attempt",
        "age",
        "updated",
        "error_",
    )
    list_display_links = ("short_id",)
    list_filter = (
        "status", WorkflowFilter, FailedStepFilter, HasParentFilter, ParentFilter, StuckFilter,
        "created_at",
    )  # fmt: skip
    search_fields = ("idempotency_key",)  # the search itself is get_search_results
    search_help_text = _(
        "A task id (or its first 8 digits), an idempotency key, key=value of meta, or error text."
    )
    ordering = ("-created_at",)
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would count the whole table
    paginator = CappedCountPaginator
    inlines = (StepRunInline,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "workflow",
                    "status_",
                    "waiting_for_",
                    "progress_",
                    "steps_",
                    "failed_step",
                    "attempt",
                    "priority",
                )
            },
        ),
        (
            _("Parent and children"),
            {"fields": ("parent_", "parent_step", "child_key", "detached", "children_")},
        ),
        (_("Error"), {"fields": ("error_text",)}),
        (_("Timeline"), {"fields": ("timeline",)}),
        (_("Data"), {"fields": ("result_", "body_", "state_", "meta_")}),
        (
            _("Times"),
            {
                "fields": (
                    "created_at_",
                    "run_after_",
                    "started_at_",
                    "finished_at_",
                    "updated_at_",
                    "cancel_requested_at_",
                    "pause_requested_at_",
                )
            },
        ),
        (
            _("Identity and lease"),
            {"fields": ("idempotency_key", "claimed_by", "lease_expires_at_", "recoveries")},
        ),
        (_("History"), {"fields": ("history",)}),
    )
    readonly_fields = (
        "id", "workflow", "status_", "waiting_for_", "progress_", "steps_", "failed_step",
        "attempt", "priority", "parent_", "parent_step", "child_key", "detached", "children_",
        "error_text", "timeline", "waits_", "signals_", "events_", "result_", "body_", "state_",
        "meta_", "created_at_", "run_after_", "started_at_", "finished_at_", "updated_at_",
        "cancel_requested_at_", "pause_requested_at_", "idempotency_key", "claimed_by",
        "lease_expires_at_", "recoveries", "history",
    )  # fmt: skip

    # -- permissions ------------------------------------------------------------------

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    # -- list -------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        return super().get_queryset(request).using(get_settings().DATABASE)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[Any]:
        from django.contrib.admin.views.main import ChangeList

        class TaskChangeList(ChangeList):
            def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
                # The list shows none of the big JSON columns, and only the beginning
                # of the error (an old row's may be megabytes): read no more.
                queryset = super().get_queryset(request, exclude_parameters)
                return queryset.defer("body", "state", "meta", "error").annotate(
                    **head("error"), function=KeyTextTransform("task", "meta")
                )

        return TaskChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Task], search_term: str
    ) -> tuple[QuerySet[Task], bool]:
        """Search by task id (or the list's 8-digit short id), idempotency key, meta
        ``key=value``, or error text.

        Each form uses an index: error text is searched among tasks that can hold one
        (all but completed ones), so a search never reads the whole table.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        if len(term) > SEARCH_LENGTH:  # longer than any id or idempotency key (255)
            refusal = gettext("The search is too long: at most %(limit)d characters.")
            self.message_user(request, refusal % {"limit": SEARCH_LENGTH}, messages.ERROR)
            return queryset.none(), False
        try:
            return queryset.filter(id=uuid.UUID(term)), False
        except ValueError:
            pass
        if SHORT_ID.fullmatch(term):
            low, high = uuid.UUID(term.ljust(32, "0")), uuid.UUID(term.ljust(32, "f"))
            return queryset.filter(id__gte=low, id__lte=high), False
        key, equals, value = (part.strip() for part in term.partition("="))
        if equals and META_KEY.fullmatch(key):
            return meta_equals(queryset, key, value), False
        has_error = Q(error__icontains=term) & ~Q(status=TaskStatus.COMPLETED)
        return queryset.filter(Q(idempotency_key=term) | has_error), False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        base = reverse(f"{self.admin_site.name}:salvador_task_changelist")
        current = request.GET.get("status__exact")
        quick_filters = [
            {
                "label": status.label,
                "url": f"{base}?status__exact={status.value}",
                "active": current == status.value,
                "status": status.value,
            }
            for status in QUICK_FILTERS
        ]
        context = {
            "quick_filters": quick_filters,
            "overview_url": reverse(f"{self.admin_site.name}:salvador_overview_changelist"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    @admin.display(description=_("task"), ordering="id")
    def short_id(self, task: Task) -> str:
        return task.id.hex[:8]

    @admin.display(description=_("workflow"), ordering="workflow")
    def workflow_(self, task: Task) -> SafeString | str:
        """The workflow; for a Django task (a queue's workflow), the task's function too."""
        function = getattr(task, "function", None)
        if not function or not is_django_task(task.workflow):
            return task.workflow
        return format_html("{}<br><small>{}</small>", task.workflow, function)

    @admin.display(description=_("status"), ordering="status")
    def status_(self, task: Task) -> SafeString:
        badge = status_badge(task.status, task.get_status_display())
        note: object
        if task.cancel_requested:
            note = CANCEL_NOTE
        elif task.pause_requested:
            note = PAUSE_NOTE
        elif task.compensation:
            note = task.get_compensation_display()
        else:
            return badge
        return format_html('{} <span class="salvador-note">{}</span>', badge, note)

    @admin.display(description=_("progress"))
    def progress_(self, task: Task) -> str:
        total = len(registry.get(task.workflow).steps) if task.workflow in registry else "?"
        done = f"{task.step}/{total}"
        return f"{done} · {task.step_name}" if task.step_name else done

    @admin.display(description=_("failed step"))
    def failed_step_(self, task: Task) -> str:
        return task.failed_step

    @admin.display(description=_("age"), ordering="created_at")
    def age(self, task: Task) -> str:
        return timesince(task.created_at, depth=1)

    @admin.display(description=_("updated"), ordering="updated_at")
    def updated(self, task: Task) -> str:
        return timesince(task.updated_at, depth=1)

    @admin.display(description=_("error"))
    def error_(self, task: Task) -> SafeString | str:
        error = head_of(task, "error")
        if not error:
            return ""
        return format_html('<span title="{}">{}</span>', beginning(error), first_line(error))

    # -- detail -----------------------------------------------------------------------

    @admin.display(description=_("error"))
    def error_text(self, task: Task) -> SafeString | str:
        return bounded_pre(task.error) if task.error else "—"

    @admin.display(description=_("body"))
    def body_(self, task: Task) -> SafeString:
        return pretty_json(task.body)

    @admin.display(description=_("state"))
    def state_(self, task: Task) -> SafeString:
        return pretty_json(task.state)

    @admin.display(description=_("meta"))
    def meta_(self, task: Task) -> SafeString:
        return pretty_json(task.meta)

    # Every time on the page to the second (Django's DATETIME_FORMAT stops at minutes).
    created_at_ = moment_of("created_at")
    run_after_ = moment_of("run_after")
    started_at_ = moment_of("started_at")
    finished_at_ = moment_of("finished_at")
    updated_at_ = moment_of("updated_at")
    cancel_requested_at_ = moment_of("cancel_requested_at")
    pause_requested_at_ = moment_of("pause_requested_at")
    lease_expires_at_ = moment_of("lease_expires_at")

    @admin.display(description=_("steps over time"))
    def timeline(self, task: Task) -> str:
        runs = (
            task.step_runs.using(get_settings().DATABASE)
            .only(*TIMELINE_FIELDS)
            .annotate(**head("error"))  # a bar's tooltip shows its beginning
        )
        step_index = {name: index for index, name in enumerate(step_names(task.workflow))}
        if task.step_name:  # a step of a workflow no longer registered
            step_index.setdefault(task.step_name, task.step)
        timeline = build_timeline(list(runs), read_waits(task).waits.rows, step_index=step_index)
        return render_to_string("admin/salvador/task/timeline.html", {"timeline": timeline})

    @admin.display(description=_("changes by operators"))
    def history(self, task: Task) -> str:
        content_type = ContentType.objects.get_for_model(Task)
        entries = (
            LogEntry.objects.filter(content_type=content_type, object_id=str(task.pk))
            .select_related("user")
            .order_by("-action_time")[:HISTORY_LENGTH]
        )
        moments = [(entry, format_moment(entry.action_time)) for entry in entries]
        return render_to_string("admin/salvador/task/history.html", {"entries": moments})

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Task | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["triage_operations"] = self.triage_operations(request, obj)
            context["requeue_steps"] = self.requeue_steps(request, obj)
            context["requeue_step_chosen"] = obj.failed_step or obj.step_name
            context["requeue_graph"] = bool(obj.progress)
            context["may_signal"] = self.may_signal(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)


__all__ = ["FailedStepFilter", "StepRunInline", "TaskAdmin", "WorkflowFilter"]
