"""The admin: triage tasks (list, detail, timeline, requeue and cancel) and an overview."""

from django.contrib import admin

from salvador_django.admin.overview import OverviewAdmin
from salvador_django.admin.tasks import StepRunInline, TaskAdmin, WorkflowFilter
from salvador_django.models import Overview, Task

admin.site.register(Task, TaskAdmin)
admin.site.register(Overview, OverviewAdmin)

__all__ = ["OverviewAdmin", "StepRunInline", "TaskAdmin", "WorkflowFilter"]
