"""The task page's view of its workflow's graph: each step done, skipped or failed (read
from ``Task.progress``), and a link to the drawing of the workflow."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.display import status_badge
from salvador_django.admin.filters import step_names
from salvador_django.admin.task_actions import TaskModelAdmin
from salvador_django.admin.workflow_page import workflow_url
from salvador_django.models import Task
from salvador_django.registry import registry
from salvador_django.status import StepRunStatus

NOT_DONE = "not-done"  # the badge of a step that has not ended (yet)


def step_states(task: Task) -> list[tuple[str, str, int]]:
    """Each step of a graph task, in definition order: its name, how it ended
    (completed, skipped, failed, or not done) and its failed attempts so far.

    Steps its progress names that the workflow no longer has come last.
    """
    progress = task.progress or {}
    done, skipped = progress.get("done", []), set(progress.get("skipped", []))
    failed, attempts = set(progress.get("failed", [])), progress.get("attempts", {})
    names = step_names(task.workflow)
    names += [name for name in [*done, *sorted(failed)] if name not in names]
    states = []
    for name in names:
        if name in failed:
            state = StepRunStatus.FAILED.value
        elif name in skipped:
            state = StepRunStatus.SKIPPED.value
        elif name in done:
            state = StepRunStatus.COMPLETED.value
        else:
            state = NOT_DONE
        states.append((name, state, int(attempts.get(name, 0))))
    return states


class TaskGraphAdmin(TaskModelAdmin):
    """The steps of a graph task (a straight-line task's page has no such field), and a
    link to its workflow's drawing."""

    def get_fieldsets(self, request: HttpRequest, obj: Task | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or obj.progress:
            return fieldsets
        return [
            (name, {**options, "fields": tuple(f for f in options["fields"] if f != "steps_")})
            for name, options in fieldsets
        ]

    @admin.display(description=_("steps"))
    def steps_(self, task: Task) -> SafeString:
        labels = {
            **{status.value: status.label for status in StepRunStatus},
            NOT_DONE: gettext("not done"),
        }
        items = []
        for name, state, failures in step_states(task):
            note = (
                ngettext("%(count)d failed attempt", "%(count)d failed attempts", failures)
                % {"count": failures}
                if failures and state != StepRunStatus.FAILED
                else ""
            )
            items.append((name, status_badge(state, labels[state]), note))
        return format_html(
            '<ul class="salvador-graph-steps">{}</ul>',
            format_html_join(
                "",
                '<li>{} {} <span class="salvador-note">{}</span></li>',
                items,
            ),
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Task | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.workflow in registry:
            context["workflow_graph_url"] = workflow_url(self.admin_site.name, obj.workflow)
        return super().render_change_form(request, context, add, change, form_url, obj)
