"""A page per registered workflow: its graph drawn (:mod:`.graph_svg`) and its steps listed.

Reached from the overview (each registered workflow's name) and from a task's page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from salvador_django.admin.graph_svg import layout
from salvador_django.exceptions import ConfigurationError
from salvador_django.models import Overview
from salvador_django.outline import undo, waits_for
from salvador_django.registry import registry

if TYPE_CHECKING:
    OverviewModelAdmin = admin.ModelAdmin[Overview]
else:  # the admin classes are generic only in the type stubs
    OverviewModelAdmin = admin.ModelAdmin

URL_NAME = "salvador_overview_workflow"


def workflow_url(admin_site_name: str, name: str) -> str:
    """The page of the registered workflow ``name``."""
    return reverse(f"{admin_site_name}:{URL_NAME}", args=[name])


class WorkflowPageAdmin(OverviewModelAdmin):
    """The view of one workflow definition, an admin page beside the overview."""

    def workflow_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.workflow_view)
        return [path("workflow/<path:name>/", view, name=URL_NAME)]

    def workflow_view(self, request: HttpRequest, name: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if name not in registry:
            raise Http404(gettext("No workflow of this name is registered."))
        workflow = registry.get(name)
        try:
            drawing, error = layout(workflow), ""
        except ConfigurationError as exc:
            drawing, error = None, str(exc)
        steps = [
            (number, step.name, waits_for(step), undo(step))
            for number, step in enumerate(workflow.steps, 1)
        ]
        task_list = reverse(f"{self.admin_site.name}:salvador_task_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": _("Workflow %(name)s") % {"name": name},
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "overview_url": reverse(f"{self.admin_site.name}:salvador_overview_changelist"),
            "tasks_url": f"{task_list}?{urlencode({'workflow': name})}",
            "workflow": workflow,
            "drawing": drawing,
            "error": error,
            "steps": steps,
        }
        return TemplateResponse(request, "admin/salvador/workflow.html", context)


__all__ = ["WorkflowPageAdmin", "workflow_url"]
