"""A task's place in the tree on its page: its parent, its children, its result.

A parent may have tens of thousands of children: its page counts them by status
(one ``GROUP BY``) and shows one page of :data:`SHOWN` of them, paginated by that
count, so no query reads more than a page of rows. A result can be a megabyte: only
its first :data:`~salvador_django.admin.display.PAGE_TEXT_LENGTH` characters are
read, in SQL, as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page
from django.db.models import Count, TextField
from django.db.models.functions import Cast, Length, Substr
from django.utils.safestring import SafeString

from salvador_django.admin.display import PAGE_TEXT_LENGTH, bounded_pre, pretty_json
from salvador_django.admin.pagination import CountedPaginator
from salvador_django.models import Task
from salvador_django.status import TaskStatus

SHOWN = 50  # children on a page
PAGE_PARAMETER = "children_page"  # the task page's query parameter for the page of children
CHILD_FIELDS = (
    "id", "workflow", "status", "parent_step", "child_key", "created_at", "finished_at",
)  # fmt: skip
#: A step's children in the order it started them: positional keys "#2" before "#10".
CHILD_ORDER = ("created_at", "parent_step", Length("child_key"), "child_key", "id")


@dataclass(frozen=True)
class Children:
    """What a parent's page shows of its children."""

    counts: list[tuple[str, str, int]]  # (status, its label, how many), by status order
    total: int
    page: Page[Any]

    def page_range(self) -> list[Any]:
        """The page numbers to link, elided around the current one (``Paginator.ELLIPSIS``)."""
        paginator = self.page.paginator
        return list(paginator.get_elided_page_range(self.page.number, on_each_side=2, on_ends=1))


def read_children(task: Task, page_number: Any = None) -> Children:
    """``task``'s children counted by status, and the page ``page_number`` of them (the
    first for a number that is not one, the last for one past the end)."""
    children = Task.objects.using(task._state.db).filter(parent_id=task.pk)
    grouped = dict(children.order_by().values_list("status").annotate(Count("id")))
    counts = [
        (status.value, str(status.label), grouped[status.value])
        for status in TaskStatus
        if grouped.get(status.value)
    ]
    total = sum(grouped.values())
    rows = children.only(*CHILD_FIELDS).order_by(*CHILD_ORDER)
    page = CountedPaginator(rows, SHOWN, count=total).get_page(page_number)
    return Children(counts, total, page)


def parent_of(task: Task) -> tuple[str, str] | None:
    """The workflow and status of ``task``'s parent (read without its JSON), or None."""
    if task.parent_id is None:
        return None
    parent = Task.objects.using(task._state.db).filter(pk=task.parent_id)
    found: tuple[str, str] | None = parent.values_list("workflow", "status").first()
    return found


def bounded_result(task: Task) -> SafeString:
    """``task``'s result, pretty when it is short, else its beginning and how much more.

    Read in SQL as JSON text, at most :data:`PAGE_TEXT_LENGTH` characters and one more
    to tell whether it goes on (``return_value`` itself is not read by the page).
    """
    text = Cast("return_value", output_field=TextField())
    head: Mapping[str, Any] | None = (
        Task.objects.using(task._state.db)
        .filter(pk=task.pk)
        .values(head=Substr(text, 1, PAGE_TEXT_LENGTH + 1), length=Length(text))
        .first()
    )
    if head is None or head["head"] is None:  # gone, or SQL NULL: the step returned None
        return pretty_json(None)
    if head["length"] <= PAGE_TEXT_LENGTH:
        return pretty_json(json.loads(head["head"]))
    return bounded_pre(head["head"], total=head["length"])
