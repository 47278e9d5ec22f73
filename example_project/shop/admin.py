"""The shop's admin; tasks and their step runs appear under "Workflows"."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from salvador_django.models import Task
from shop.models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "item",
        "quantity",
        "address",
        "status",
        "payment_reference",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("item", "address", "payment_reference", "shipment_reference")
    readonly_fields = ("payment_reference", "shipment_reference", "created_at", "task")

    @admin.display(description="process-order task")
    def task(self, order: Order) -> str:
        """A link to the task the demo submitted for this order (idempotency key ``order-<pk>``)."""
        task = Task.objects.filter(
            workflow="process-order", idempotency_key=f"order-{order.pk}"
        ).first()
        if task is None:
            return "-"
        url = reverse("admin:salvador_task_change", args=[task.pk])
        return format_html('<a href="{}">{} ({})</a>', url, task.pk, task.get_status_display())
