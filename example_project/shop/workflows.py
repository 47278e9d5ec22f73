"""The ``process-order`` workflow: validate, charge the payment, ship.

salvador-django finds this module by autodiscovery (like ``admin.py``). Each task's
body is ``{"order_id": ...}``; every step loads the order afresh, because a step may
run in another process, or again after a crash.
"""

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count

from salvador_django import Retry, Schedule, Workflow
from salvador_django.models import Task
from shop.models import Order

#: Countries no carrier delivers to: ``ship`` fails for them, every time.
UNSUPPORTED_COUNTRIES = frozenset({"Atlantis"})

process_order = Workflow("process-order")


def get_order(task: Task) -> Order:
    """The order this task processes."""
    return Order.objects.get(pk=task.body["order_id"])


def validate(task: Task) -> dict[str, Any]:
    """Reject orders that cannot be fulfilled; remember the destination in ``task.state``."""
    order = get_order(task)
    if order.quantity <= 0:
        raise ValueError(f"quantity must be positive, not {order.quantity}")
    if not order.item.strip():
        raise ValueError("the order has no item")
    task.state["country"] = order.country  # saved with this step's checkpoint
    Order.objects.filter(pk=order.pk).update(status=Order.Status.VALIDATED)
    return {"item": order.item, "quantity": order.quantity}


def charge_payment(task: Task) -> str:
    """Charge the customer through a (simulated, flaky) payment gateway."""
    order = get_order(task)
    # A step runs at least once: after a crash between the charge and the checkpoint
    # it runs again. task.step_key() ("<task id>:charge-payment") is the same on every
    # attempt, so a real gateway given it as idempotency key charges only once.
    reference = fake_gateway_charge(order, idempotency_key=task.step_key(), attempt=task.attempt)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PAID, payment_reference=reference)
    return reference


process_order.step("validate", validate)
process_order.step(
    "charge-payment", charge_payment, retry=Retry(max_attempts=3, initial_delay=0.1, jitter=False)
)


@process_order.step("ship")
def ship(task: Task) -> str:
    """Book a carrier for the order; fails for countries no carrier delivers to."""
    order = get_order(task)
    country = task.state["country"]
    if country in UNSUPPORTED_COUNTRIES:
        raise ValueError(f"no carrier delivers to {country}")
    reference = "SHP-" + _digest(task.step_key())
    Order.objects.filter(pk=order.pk).update(
        status=Order.Status.SHIPPED, shipment_reference=reference
    )
    return reference


def fake_gateway_charge(order: Order, *, idempotency_key: str, attempt: int) -> str:
    """Stand-in for a payment API: times out on the first try for every fourth order."""
    if order.pk % 4 == 0 and attempt == 1:  # task.attempt is this attempt's number
        raise ConnectionError("payment gateway timed out")
    return "PAY-" + _digest(idempotency_key)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12].upper()


#: Every night at 03:00 in Paris: count yesterday's orders by status. The workers copy
#: the schedule to the database when they start; the admin's Schedules page shows it.
daily_report = Workflow(
    "daily-order-report",
    schedules=[Schedule("0 3 * * *", name="nightly-order-report", timezone="Europe/Paris")],
)


@daily_report.step("count")
def count_orders(task: Task) -> dict[str, int]:
    """How many orders of the day before the tick are in each status."""
    tick = datetime.fromisoformat(task.meta["scheduled_for"])
    day = Order.objects.filter(created_at__gte=tick - timedelta(days=1), created_at__lt=tick)
    return {row["status"]: row["n"] for row in day.values("status").annotate(n=Count("id"))}
