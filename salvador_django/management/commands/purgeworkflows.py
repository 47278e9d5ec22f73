"""``manage.py purgeworkflows``: delete old finished tasks in batches (retention)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from salvador_django.conf import get_settings
from salvador_django.maintenance import MAX_BATCH_SIZE, purge_tasks, select_tasks
from salvador_django.management.commands.requeueworkflows import batch_size, moment
from salvador_django.management.progress import Progress
from salvador_django.status import TaskStatus


class Command(BaseCommand):
    help = (
        "Delete finished tasks (and their step runs) that finished before --older-than, "
        "a batch per transaction. Failed tasks are kept unless --status failed is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=moment,
            required=True,
            help="Tasks that finished before then: an age (30d, 12h) or an ISO date, "
            "at most 100 years from now.",
        )
        parser.add_argument(
            "--status",
            action="append",
            dest="statuses",
            choices=[TaskStatus.COMPLETED, TaskStatus.CANCELLED, TaskStatus.FAILED],
            help="Only tasks in this status (repeatable; default: completed and cancelled).",
        )
        parser.add_argument(
            "--workflow",
            action="append",
            dest="workflows",
            metavar="NAME",
            help="Only tasks of this workflow (repeatable; default: every workflow).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")
        parser.add_argument(
            "--batch-size",
            type=batch_size,
            default=1000,
            help=f"Tasks per transaction, at most {MAX_BATCH_SIZE} (default: 1000).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        statuses = options["statuses"] or [TaskStatus.COMPLETED, TaskStatus.CANCELLED]
        tasks = select_tasks(
            get_settings().DATABASE,
            workflows=options["workflows"] or (),
            statuses=statuses,
            finished_before=options["older_than"],
        )
        total = tasks.count()
        cutoff = options["older_than"].isoformat(timespec="seconds")
        what = f"{total:,} task(s) ({', '.join(statuses)}) finished before {cutoff}"
        if options["dry_run"]:
            self.stdout.write(f"Would delete {what}. Dry run: nothing deleted.")
            return
        progress = Progress.on(self.stdout, total=total, verb="deleted")
        try:
            purged = purge_tasks(tasks, batch_size=options["batch_size"], on_batch=progress.advance)
        finally:
            progress.finish()
        self.stdout.write(self.style.SUCCESS(f"Deleted {purged:,} task(s) and their step runs."))
