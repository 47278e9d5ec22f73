"""The admin: triage tasks (list, detail, timeline, requeue and cancel), an overview, the
schedules (pause, resume, run now) and the workers."""

from django.contrib import admin

from salvador_django.admin.overview import OverviewAdmin
from salvador_django.admin.schedules import ScheduleAdmin
from salvador_django.admin.tasks import StepRunInline, TaskAdmin, WorkflowFilter
from salvador_django.admin.workers import WorkerProcessAdmin
from salvador_django.models import Overview, Schedule, Task, WorkerProcess

admin.site.register(Task, TaskAdmin)
admin.site.register(Overview, OverviewAdmin)
admin.site.register(Schedule, ScheduleAdmin)
admin.site.register(WorkerProcess, WorkerProcessAdmin)

__all__ = [
    "OverviewAdmin",
    "ScheduleAdmin",
    "StepRunInline",
    "TaskAdmin",
    "WorkerProcessAdmin",
    "WorkflowFilter",
]
