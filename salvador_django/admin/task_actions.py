"""What an operator does to tasks from the admin: the list's actions and the page's buttons.

Each is an operation of :mod:`salvador_django.admin.triage` (or, on a finished task's
page, a requeue from a chosen step), applied, recorded in the admin history
(``LogEntry``) and reported to the user.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext

from salvador_django.admin.filters import step_names
from salvador_django.admin.triage import CANCEL, OPERATIONS, REQUEUE, RESTART, Operation, perform
from salvador_django.exceptions import InvalidTransition
from salvador_django.models import Task
from salvador_django.transitions import REQUEUE_FROM_STEP

if TYPE_CHECKING:
    TaskModelAdmin = admin.ModelAdmin[Task]
else:  # the admin classes are generic only in the type stubs
    TaskModelAdmin = admin.ModelAdmin


class TaskActionsAdmin(TaskModelAdmin):
    """The task admin's permissions, list actions and per-task buttons."""

    actions = ("requeue_action", "restart_action", "cancel_action")

    # -- permissions ------------------------------------------------------------------

    def has_requeue_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("salvador.requeue_task"))

    def has_cancel_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("salvador.cancel_task"))

    def may(self, request: HttpRequest, operation: Operation) -> bool:
        """Whether the user holds the permission that ``operation`` requires."""
        return bool(getattr(self, f"has_{operation.permission}_permission")(request))

    def triage_operations(self, request: HttpRequest, task: Task) -> list[Operation]:
        """The buttons of ``task``'s page: the operations the user may apply to it now."""
        return [
            operation
            for operation in OPERATIONS.values()
            if self.may(request, operation) and operation.allows(task)
        ]

    def requeue_steps(self, request: HttpRequest, task: Task) -> list[str]:
        """The steps ``task`` may be requeued from by this user: none unless the state
        machine allows the move now and its workflow is registered."""
        allowed = REQUEUE_FROM_STEP.allows(task.status, task.compensation)
        if not allowed or not self.may(request, REQUEUE):
            return []
        return step_names(task.workflow)

    # -- per-task views ---------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        triage = self.admin_site.admin_view(self.triage_view)
        from_step = self.admin_site.admin_view(self.requeue_from_step_view)
        return [
            path("<path:object_id>/triage/<slug:operation>/", triage, name="salvador_task_triage"),
            path(
                "<path:object_id>/requeue-from-step/",
                from_step,
                name="salvador_task_requeue_from_step",
            ),
            *super().get_urls(),
        ]

    def task_for(self, request: HttpRequest, object_id: str, operation: Operation) -> Task:
        """The task a button acts on, once the user may see tasks and apply ``operation``.

        Both are checked before the task is looked up: a user refused gets 403 whether
        the task exists or not, so the answer tells nothing about which ids exist.
        Only a user who may act gets 404 for an unknown task.
        """
        if not self.has_view_permission(request) or not self.may(request, operation):
            raise PermissionDenied
        task = self.get_object(request, unquote(object_id))
        if task is None:
            raise Http404(f"No task with id {object_id!r}.")
        return task

    def back_to(self, task: Task) -> HttpResponse:
        """A redirect to ``task``'s page."""
        return redirect(
            reverse(f"{self.admin_site.name}:salvador_task_change", args=[quote(task.pk)])
        )

    def triage_view(self, request: HttpRequest, object_id: str, operation: str) -> HttpResponse:
        """The detail page's buttons: apply one operation to one task (POST only)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        chosen = OPERATIONS.get(operation)
        if chosen is None:
            raise Http404(f"No operation named {operation!r}.")
        task = self.task_for(request, object_id, chosen)
        self.apply(request, chosen, [task])
        return self.back_to(task)

    def requeue_from_step_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A finished task's page: run it again from the step the form names (POST only).

        The model refuses what is not allowed (:class:`InvalidTransition` for a task
        that is not finished, ``ValueError`` for a step its workflow does not have):
        the operator is told why, and nothing is recorded.
        """
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        task = self.task_for(request, object_id, REQUEUE)  # the permission of every requeue
        step = request.POST.get("step", "")
        try:
            task.requeue(from_step=step)
        except (InvalidTransition, ValueError, Task.DoesNotExist) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return self.back_to(task)
        if request.user.pk is not None:
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=[task],
                action_flag=CHANGE,
                change_message=gettext("Requeue from step %(step)s") % {"step": step},
            )
        done = gettext("Requeued from step %(step)s") % {"step": step}
        self.message_user(request, done, messages.SUCCESS)
        return self.back_to(task)

    def apply(self, request: HttpRequest, operation: Operation, tasks: Iterable[Task]) -> None:
        """Apply ``operation``, record it in the admin history, and report to the user."""
        report = perform(operation, tasks)
        changed = [*report.done, *report.requested]
        if changed and request.user.pk is not None:
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=changed,
                action_flag=CHANGE,
                change_message=str(operation.label),
            )
        level = messages.SUCCESS if changed and not report.skipped else messages.WARNING
        self.message_user(request, report.message(), level)

    # -- list actions -----------------------------------------------------------------

    @admin.action(description=REQUEUE.label, permissions=["requeue"])
    def requeue_action(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self.apply(request, REQUEUE, list(queryset))

    @admin.action(description=RESTART.label, permissions=["requeue"])
    def restart_action(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self.apply(request, RESTART, list(queryset))

    @admin.action(description=CANCEL.label, permissions=["cancel"])
    def cancel_action(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self.apply(request, CANCEL, list(queryset))
