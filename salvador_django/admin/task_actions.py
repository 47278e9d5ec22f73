"""What an operator does to tasks from the admin: the list's actions and the page's buttons.

Each is an operation of :mod:`salvador_django.admin.triage` (or, on a finished task's
page, a requeue from a chosen step; on an unfinished one's, a signal sent through a
form), applied, recorded in the admin history (``LogEntry``) and reported to the user.
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
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext

from salvador_django.admin.filters import step_names
from salvador_django.admin.signal_form import SignalForm, may_be_signalled
from salvador_django.admin.triage import (
    CANCEL,
    OPERATIONS,
    PAUSE,
    REQUEUE,
    RESTART,
    RESUME,
    Operation,
    perform,
)
from salvador_django.admin.waits import waiting_for
from salvador_django.exceptions import InvalidTransition, PayloadError
from salvador_django.models import Signal, Task
from salvador_django.status import TaskStatus
from salvador_django.transitions import REQUEUE_FROM_STEP

if TYPE_CHECKING:
    TaskModelAdmin = admin.ModelAdmin[Task]
else:  # the admin classes are generic only in the type stubs
    TaskModelAdmin = admin.ModelAdmin


class TaskActionsAdmin(TaskModelAdmin):
    """The task admin's permissions, list actions and per-task buttons."""

    actions = ("requeue_action", "restart_action", "cancel_action", "pause_action", "resume_action")

    # -- permissions ------------------------------------------------------------------

    def has_requeue_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("salvador.requeue_task"))

    def has_cancel_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("salvador.cancel_task"))

    def has_pause_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("salvador.pause_task"))

    def has_signal_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("salvador.signal_task"))

    def may(self, request: HttpRequest, operation: Operation | str) -> bool:
        """Whether the user holds the permission that ``operation`` requires (an
        operation, or a permission's name: ``"signal"``)."""
        permission = operation if isinstance(operation, str) else operation.permission
        return bool(getattr(self, f"has_{permission}_permission")(request))

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

    def may_signal(self, request: HttpRequest, task: Task) -> bool:
        """Whether ``task``'s page offers this user the Send signal form."""
        return self.has_signal_permission(request) and may_be_signalled(task)

    # -- per-task views ---------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        triage = self.admin_site.admin_view(self.triage_view)
        from_step = self.admin_site.admin_view(self.requeue_from_step_view)
        signal = self.admin_site.admin_view(self.signal_view)
        return [
            path("<path:object_id>/triage/<slug:operation>/", triage, name="salvador_task_triage"),
            path(
                "<path:object_id>/requeue-from-step/",
                from_step,
                name="salvador_task_requeue_from_step",
            ),
            path("<path:object_id>/signal/", signal, name="salvador_task_signal"),
            *super().get_urls(),
        ]

    def task_for(self, request: HttpRequest, object_id: str, operation: Operation | str) -> Task:
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
        self.log(request, [task], gettext("Requeue from step %(step)s") % {"step": step})
        done = gettext("Requeued from step %(step)s") % {"step": step}
        self.message_user(request, done, messages.SUCCESS)
        return self.back_to(task)

    def signal_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """An unfinished task's Send signal form (GET), and the signal it sends (POST).

        A bad name or payload shows the form again with the error, and nothing is sent.
        The model refuses a finished task (:class:`InvalidTransition`): the operator is
        told why, and nothing is sent or recorded. The form carries an idempotency key
        of its own, so a form posted twice sends its signal once.
        """
        task = self.task_for(request, object_id, "signal")
        if request.method == "POST":
            form = SignalForm(request.POST)
            if form.is_valid():
                return self.send_signal(request, task, form)
        elif not may_be_signalled(task):
            refusal = gettext("Task %(task)s is %(status)s: it takes no more signals.")
            values = {"task": task.id, "status": task.get_status_display().lower()}
            self.message_user(request, refusal % values, messages.ERROR)
            return self.back_to(task)
        else:
            form = SignalForm(initial=SignalForm.initial_for(task))
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Send a signal to task %(task)s") % {"task": task.id.hex[:8]},
            "opts": self.opts,
            "original": task,
            "form": form,
            "waiting_for": waiting_for(task),
            "task_url": reverse(
                f"{self.admin_site.name}:salvador_task_change", args=[quote(task.pk)]
            ),
        }
        return TemplateResponse(request, "admin/salvador/task/signal_form.html", context)

    def send_signal(self, request: HttpRequest, task: Task, form: SignalForm) -> HttpResponse:
        """Send the signal ``form`` holds to ``task``, record it and say what it did."""
        name, payload, key = form.signal()
        alias = task._state.db
        already = Signal.objects.using(alias).filter(task_id=task.pk, idempotency_key=key)
        if already.exists():  # this form was posted before: its signal went then
            self.message_user(request, gettext("This signal was already sent."), messages.WARNING)
            return self.back_to(task)
        awaited = task.status == TaskStatus.WAITING and task.waiting_for == name
        try:
            task.signal(name, payload, idempotency_key=key)
        except (InvalidTransition, PayloadError, Task.DoesNotExist) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return self.back_to(task)
        self.log(request, [task], gettext("Send signal '%(name)s'") % {"name": name})
        done = (
            gettext("Signal '%(name)s' sent: the task is due again.")
            if awaited
            else gettext("Signal '%(name)s' sent: it is kept until the task waits for it.")
        )
        self.message_user(request, done % {"name": name}, messages.SUCCESS)
        return self.back_to(task)

    def log(self, request: HttpRequest, tasks: list[Task], message: str) -> None:
        """Record in the admin history that the user did ``message`` to ``tasks``."""
        if tasks and request.user.pk is not None:
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=tasks,
                action_flag=CHANGE,
                change_message=message,
            )

    def apply(self, request: HttpRequest, operation: Operation, tasks: Iterable[Task]) -> None:
        """Apply ``operation``, record it in the admin history, and report to the user."""
        report = perform(operation, tasks)
        changed = [*report.done, *report.requested]
        self.log(request, changed, str(operation.label))
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

    @admin.action(description=PAUSE.label, permissions=["pause"])
    def pause_action(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self.apply(request, PAUSE, list(queryset))

    @admin.action(description=RESUME.label, permissions=["pause"])
    def resume_action(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self.apply(request, RESUME, list(queryset))
