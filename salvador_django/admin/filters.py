"""The task list's filters: their choices come from the registry or the URL, never a scan of
the table."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.display import shorten
from salvador_django.registry import registry


class WorkflowFilter(admin.SimpleListFilter):
    """Filter by workflow; the choices come from the registry, not a scan of the table."""

    title = _("workflow")
    parameter_name = "workflow"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in registry.names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(workflow=value) if value else queryset


def step_names(workflow: str | None = None) -> list[str]:
    """The steps of ``workflow`` in order, or every registered workflow's, sorted, once each."""
    if workflow is not None:
        return [step.name for step in registry.get(workflow).steps] if workflow in registry else []
    names = {
        step.name
        for name in registry.names()
        if name in registry
        for step in registry.get(name).steps
    }
    return sorted(names)


class FailedStepFilter(admin.SimpleListFilter):
    """Filter by the step a task broke at; the choices are the registered workflows' steps.

    With a workflow chosen, only its steps are offered, in their order.
    """

    title = _("failed step")
    parameter_name = "failed_step"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        workflow = request.GET.get(WorkflowFilter.parameter_name) or None
        return [(name, name) for name in step_names(workflow)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(failed_step=value) if value else queryset


class HasParentFilter(admin.SimpleListFilter):
    """Children (started by a step of another task) or top-level tasks."""

    title = _("parent")
    parameter_name = "has_parent"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("has parent")), ("no", _("top level"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in ("yes", "no"):
            return queryset.filter(parent__isnull=value == "no")
        return queryset


class ParentFilter(admin.SimpleListFilter):
    """The children of one task, by its id (the link on a parent's page); shown only
    while it filters, as the one choice, so offering it reads nothing."""

    title = _("children of")
    parameter_name = "parent__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        value = self.value()
        if not value:
            return []
        parent = self.parent_id()  # a value that is no id filters out every task
        shown = parent.hex[:8] if parent is not None else shorten(value, 12)
        return [(value, _("task %(id)s") % {"id": shown})]

    def parent_id(self) -> uuid.UUID | None:
        try:
            return uuid.UUID(str(self.value())) if self.value() else None
        except ValueError:
            return None

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if not self.value():
            return queryset
        parent = self.parent_id()
        return queryset.none() if parent is None else queryset.filter(parent_id=parent)
