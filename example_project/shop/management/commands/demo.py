"""``manage.py demo``: create orders, run the ``process-order`` workflow, show the outcomes."""

import time
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from salvador_django import TaskStatus, submit
from salvador_django.models import Task
from shop.models import Order

ADMIN_URL = "http://127.0.0.1:8000/admin/"
ITEMS = ("widget", "gadget", "gizmo", "doohickey", "sprocket")
CITIES = (
    "12 Main St, Springfield, USA",
    "3 Rue Haute, Lyon, France",
    "7 Kanalweg, Utrecht, Netherlands",
)
ATLANTIS = "1 Coral Way, Poseidonis, Atlantis"
#: A burst worker exits when nothing is due, even if a retry is waiting out its backoff.
MAX_BURSTS = 20


class Command(BaseCommand):
    help = "Create demo orders, process them with a burst worker, and print what happened."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--orders", type=int, default=20, help="Orders to create (default: 20)."
        )
        parser.add_argument(
            "--concurrency", type=int, default=4, help="Worker threads (default: 4)."
        )

    def handle(self, *args: Any, orders: int, concurrency: int, **options: Any) -> None:
        call_command("migrate", verbosity=0, interactive=False)
        self.reset_admin_user()
        tasks = self.submit_orders(orders)
        self.stdout.write(f"Submitted {len(tasks)} process-order task(s); running the worker...\n")
        self.run_worker(tasks, concurrency)
        self.report(tasks)

    def reset_admin_user(self) -> None:
        """Create the superuser ``admin`` (password ``admin``), or reset its password."""
        user, _ = get_user_model().objects.get_or_create(username="admin")
        user.is_staff = user.is_superuser = True
        user.set_password("admin")
        user.save()

    def submit_orders(self, count: int) -> list[Task]:
        """Create ``count`` orders and one task each, committed together."""
        tasks = []
        with transaction.atomic():
            for i in range(count):
                order = Order.objects.create(
                    item=ITEMS[i % len(ITEMS)],
                    quantity=0 if i == 3 else i % 3 + 1,  # validate rejects quantity 0
                    address=ATLANTIS if i % 7 == 5 else CITIES[i % len(CITIES)],  # ship fails
                )
                task = submit(
                    "process-order", {"order_id": order.pk}, idempotency_key=f"order-{order.pk}"
                )
                tasks.append(task)
        # The tasks are enqueued when this transaction commits, never before.
        return tasks

    def run_worker(self, tasks: list[Task], concurrency: int) -> None:
        """Run burst workers until none of ``tasks`` is pending (retries wait out a backoff)."""
        ids = [task.pk for task in tasks]
        for _ in range(MAX_BURSTS):
            call_command("runworkflows", burst=True, concurrency=concurrency)
            if not Task.objects.filter(pk__in=ids, status=TaskStatus.PENDING).exists():
                return
            time.sleep(0.1)

    def report(self, tasks: list[Task]) -> None:
        """Print one row per order, then a summary line."""
        by_id = {task.pk: task for task in Task.objects.filter(pk__in=[t.pk for t in tasks])}
        orders = Order.objects.in_bulk([task.body["order_id"] for task in tasks])
        retried = set(
            Task.objects.filter(
                pk__in=by_id, step_runs__name="charge-payment", step_runs__attempt__gt=1
            ).values_list("pk", flat=True)
        )
        rows = [("order", "item", "qty", "country", "task status", "stopped at", "error")]
        for submitted in tasks:
            task = by_id[submitted.pk]
            order = orders[task.body["order_id"]]
            failed = task.status == TaskStatus.FAILED
            note = "charged on retry" if task.pk in retried and not failed else ""
            rows.append(
                (
                    str(order.pk),
                    order.item,
                    str(order.quantity),
                    order.country,
                    task.status,
                    task.step_name if failed else "",
                    task.error if failed else note,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        self.stdout.write("")
        for n, row in enumerate(rows):
            line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.stdout.write(line.rstrip())
            if n == 0:
                self.stdout.write("  ".join("-" * width for width in widths))
        counts = {status: 0 for status in TaskStatus.values}
        for task in by_id.values():
            counts[task.status] += 1
        summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        self.stdout.write("\n" + self.style.SUCCESS(summary or "no orders"))
        self.stdout.write(
            f"\nBrowse the orders, tasks and step runs in the admin: {ADMIN_URL}\n"
            "  user: admin   password: admin\n"
            "  start the server with: python manage.py runserver\n"
            "Failed tasks can be requeued from the shell: get_task(id).requeue()"
        )
