"""The overview: tasks per workflow and status, recent failures, waiting time, queue depth;
stuck tasks; the last 24 hours charted per workflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Min, Q
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.activity import HOURS, last_day
from salvador_django.admin.durations import format_duration
from salvador_django.admin.pagination import COUNT_CAP
from salvador_django.admin.stuck import count_stuck
from salvador_django.admin.workflow_page import WorkflowPageAdmin, workflow_url
from salvador_django.conf import get_settings
from salvador_django.exceptions import QueueUnavailable
from salvador_django.models import Task, WorkerProcess
from salvador_django.queues import get_queue
from salvador_django.registry import registry
from salvador_django.status import TaskStatus

RECENT = timedelta(hours=24)
QUEUE_UNAVAILABLE = _(
    "The queue is unavailable: its depth cannot be shown. Tasks wait in the database "
    "until it is back."
)


@dataclass(frozen=True)
class Cell:
    count: int
    url: str
    capped: bool = False  # there are more than ``count``
    label: str = ""


@dataclass
class WorkflowSummary:
    """One workflow's line of the overview."""

    name: str
    registered: bool
    counts: dict[str, Cell] = field(default_factory=dict)
    failed_recently: Cell | None = None
    failed_steps: list[Cell] = field(default_factory=list)  # recent failures by failed step
    oldest_due: datetime | None = None
    depth: dict[str, int] | None = None
    graph_url: str = ""  # the page of its definition, when it is registered

    @property
    def waiting(self) -> str:
        """How long the oldest due task has waited, or "" when none waits."""
        if self.oldest_due is None:
            return ""
        return format_duration(timezone.now() - self.oldest_due)


def summarize(database: str, list_url: str) -> tuple[list[WorkflowSummary], str | None]:
    """A summary per workflow (registered or found in the table), and a queue problem."""
    tasks = Task.objects.using(database)
    summaries: dict[str, WorkflowSummary] = {
        name: WorkflowSummary(name, registered=True) for name in registry.names()
    }

    def summary(name: str) -> WorkflowSummary:
        if name not in summaries:
            summaries[name] = WorkflowSummary(name, registered=False)
        return summaries[name]

    def link(**params: str) -> str:
        return f"{list_url}?{urlencode(params)}"

    # Unfinished and failed tasks are counted exactly (the triage index holds them);
    # completed ones, most of a large table, are counted up to COUNT_CAP per workflow.
    # The same pass finds the oldest due task of each workflow (the pending rows' oldest
    # run_after, if passed): at a million tasks, a second pass through the pending rows
    # cost as much again (their heap pages are scattered).
    unfinished = tasks.exclude(status=TaskStatus.COMPLETED).order_by()
    rows = unfinished.values("workflow", "status").annotate(
        n=Count("pk"), oldest=Min("run_after", filter=Q(run_after__lte=Now()))
    )
    for row in rows:
        item = summary(row["workflow"])
        item.counts[row["status"]] = Cell(
            row["n"], link(workflow=row["workflow"], status__exact=row["status"])
        )
        if row["status"] == TaskStatus.PENDING:
            item.oldest_due = row["oldest"]
    for name in list(summaries):
        completed = tasks.filter(workflow=name, status=TaskStatus.COMPLETED).order_by()
        count = completed[: COUNT_CAP + 1].count()
        if count:
            summaries[name].counts[TaskStatus.COMPLETED] = Cell(
                min(count, COUNT_CAP),
                link(workflow=name, status__exact=TaskStatus.COMPLETED),
                capped=count > COUNT_CAP,
            )
    since = timezone.now() - RECENT
    recent = (
        tasks.filter(status=TaskStatus.FAILED, finished_at__gte=since)
        .order_by()
        .values("workflow", "failed_step")
        .annotate(n=Count("pk"))
    )
    failed = {"status__exact": TaskStatus.FAILED}
    for failure in sorted(recent, key=lambda f: (-f["n"], f["failed_step"])):
        item = summary(failure["workflow"])
        total = item.failed_recently.count if item.failed_recently else 0
        item.failed_recently = Cell(total + failure["n"], link(workflow=item.name, **failed))
        if failure["failed_step"]:
            item.failed_steps.append(
                Cell(
                    failure["n"],
                    link(workflow=item.name, failed_step=failure["failed_step"], **failed),
                    label=failure["failed_step"],
                )
            )

    problem = None
    queue = get_queue()
    for item in summaries.values():
        try:
            item.depth = queue.depth(item.name)
        except QueueUnavailable as exc:
            problem = str(exc)
            break
    return sorted(summaries.values(), key=lambda s: s.name), problem


class OverviewAdmin(WorkflowPageAdmin):
    """An admin page, not a model's list: the overview of every workflow's tasks."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("salvador.view_task"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.overview_view)
        return [path("", view, name="salvador_overview_changelist"), *self.workflow_urls()]

    def workers_context(self, request: HttpRequest, database: str) -> dict[str, Any]:
        """The link to the workers page, with how many are alive, for those who may see it."""
        if not request.user.has_perm("salvador.view_workerprocess"):
            return {"workers_url": ""}
        return {
            "workers_url": reverse(f"{self.admin_site.name}:salvador_workerprocess_changelist"),
            "workers_alive": WorkerProcess.objects.using(database).alive().count(),
        }

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        list_url = reverse(f"{self.admin_site.name}:salvador_task_changelist")
        database = get_settings().DATABASE
        summaries, problem = summarize(database, list_url)
        for item in summaries:
            if item.registered:
                item.graph_url = workflow_url(self.admin_site.name, item.name)
        if problem and not request.user.is_superuser:
            problem = str(QUEUE_UNAVAILABLE)  # the queue's error names hosts and ports
        statuses = list(TaskStatus)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Workflow overview"),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "statuses": statuses,
            "rows": [
                (item, [item.counts.get(status) for status in statuses]) for item in summaries
            ],
            "show_depth": any(item.depth is not None for item in summaries),
            "queue_problem": problem,
            "list_url": list_url,
            "schedules_url": reverse(f"{self.admin_site.name}:salvador_schedule_changelist")
            if request.user.has_perm("salvador.view_schedule")
            else "",
            "recent_hours": int(RECENT.total_seconds() // 3600),
            "stuck": count_stuck(database, list_url),
            "last_day": last_day(database),
            "chart_hours": HOURS,
            **self.workers_context(request, database),
        }
        return TemplateResponse(request, "admin/salvador/overview.html", context)
