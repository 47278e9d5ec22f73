"""The task page's fields of the tree: a child's parent, a parent's children, the result
(read by :mod:`salvador_django.admin.children`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.children import (
    PAGE_PARAMETER,
    bounded_result,
    parent_of,
    read_children,
)
from salvador_django.admin.display import status_badge
from salvador_django.admin.durations import format_moment
from salvador_django.admin.task_actions import TaskModelAdmin
from salvador_django.models import Task
from salvador_django.status import TaskStatus

CHILD_FIELDS = ("parent_", "parent_step", "child_key", "detached")
PAGE_QUERY = "_salvador_children_query"  # the attribute a task's page keeps its query in
#: The list's parameter of a parent's children (a plain lookup: ParentFilter shows it).
PARENT_LOOKUP = "parent__id__exact"


class TaskTreeAdmin(TaskModelAdmin):
    """The fields of the tree, shown only on the pages of tasks they concern."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        # A result can be a megabyte: no page reads it whole (see bounded_result).
        return super().get_queryset(request).defer("return_value")

    def get_fieldsets(self, request: HttpRequest, obj: Task | None = None) -> Any:
        """Without a child's fields unless the task is a child, without its children
        unless it has some, without its result unless it completed."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        hidden: set[str] = set()
        if obj.parent_id is None and not obj.parent_step:
            hidden.update(CHILD_FIELDS)
        if obj.has_children is not True:
            hidden.add("children_")
        if obj.status != TaskStatus.COMPLETED:
            hidden.add("result_")
        shown = []
        for name, options in fieldsets:
            fields = tuple(field for field in options["fields"] if field not in hidden)
            if fields:
                shown.append((name, {**options, "fields": fields}))
        return shown

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Task | None = None,
    ) -> HttpResponse:
        if obj is not None:  # its query string says which page of children to show
            setattr(obj, PAGE_QUERY, request.GET.copy())
        return super().render_change_form(request, context, add, change, form_url, obj)

    def task_url(self, task_id: Any) -> str:
        return reverse(f"{self.admin_site.name}:salvador_task_change", args=[quote(task_id)])

    def children_url(self, task: Task, **filters: str) -> str:
        """The task list of ``task``'s children (and ``filters``)."""
        base = reverse(f"{self.admin_site.name}:salvador_task_changelist")
        return f"{base}?{urlencode({PARENT_LOOKUP: str(task.pk), **filters})}"

    @admin.display(description=_("parent"))
    def parent_(self, task: Task) -> SafeString | str:
        parent_id, parent = task.parent_id, parent_of(task)
        if parent_id is None or parent is None:  # a top-level task, or its parent was deleted
            return self.get_empty_value_display()
        workflow, status = parent
        return format_html(
            '<a href="{}" class="salvador-parent">{} {}</a> {}',
            self.task_url(parent_id),
            workflow,
            parent_id.hex[:8],
            status_badge(status, TaskStatus(status).label),
        )

    @admin.display(description=_("children"))
    def children_(self, task: Task) -> str:
        query: QueryDict = getattr(task, PAGE_QUERY, None) or QueryDict(mutable=True)
        children = read_children(task, query.get(PAGE_PARAMETER))
        rows = [
            (
                child,
                self.task_url(child.pk),
                status_badge(child.status, child.get_status_display()),
                format_moment(child.created_at),
                format_moment(child.finished_at) or "—",
            )
            for child in children.page
        ]
        counts = [
            (status_badge(status, label), count, self.children_url(task, status__exact=status))
            for status, label, count in children.counts
        ]
        pages: list[tuple[int | str, str | None]] = []
        if children.page.paginator.num_pages > 1:
            query = query.copy()
            for number in children.page_range():
                if not isinstance(number, int):  # the ellipsis (a lazy string)
                    pages.append((str(number), None))
                    continue
                query[PAGE_PARAMETER] = str(number)
                pages.append((number, f"?{query.urlencode()}"))
        context = {
            "children": children,
            "counts": counts,
            "rows": rows,
            "pages": pages,
            "list_url": self.children_url(task),
        }
        return render_to_string("admin/salvador/task/children.html", context)

    @admin.display(description=_("result"))
    def result_(self, task: Task) -> SafeString:
        return bounded_result(task)
