"""A read-only view of tasks and their step runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest

from salvador_django.models import StepRun, Task

if TYPE_CHECKING:
    TaskModelAdmin = admin.ModelAdmin[Task]
    StepRunTabularInline = admin.TabularInline[StepRun, Task]
else:  # the admin classes are generic only in the type stubs
    TaskModelAdmin = admin.ModelAdmin
    StepRunTabularInline = admin.TabularInline


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


class StepRunInline(ReadOnlyMixin, StepRunTabularInline):
    model = StepRun
    extra = 0
    fields = ("index", "name", "attempt", "status", "started_at", "finished_at", "error", "worker")
    readonly_fields = fields
    ordering = ("index", "attempt")


@admin.register(Task)
class TaskAdmin(ReadOnlyMixin, TaskModelAdmin):
    list_display = ("id", "workflow", "status", "step", "step_name", "attempt", "updated_at")
    list_filter = ("status", "workflow")
    search_fields = ("=id", "=idempotency_key")
    ordering = ("-created_at",)
    show_full_result_count = False
    inlines = (StepRunInline,)
