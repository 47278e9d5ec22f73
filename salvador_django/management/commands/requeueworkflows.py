"""``manage.py requeueworkflows``: requeue failed (dead-letter) tasks in bulk."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from salvador_django.conf import get_settings
from salvador_django.definitions import registry
from salvador_django.exceptions import InvalidTransition
from salvador_django.maintenance import (
    MAX_BATCH_SIZE,
    parse_moment,
    requeue_tasks,
    select_tasks,
)
from salvador_django.management.progress import Progress
from salvador_django.status import TaskStatus


def moment(text: str) -> Any:
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def batch_size(text: str) -> int:
    if not (text.isdigit() and 1 <= int(text) <= MAX_BATCH_SIZE):
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {MAX_BATCH_SIZE}, not {text!r}"
        )
    return int(text)


class Command(BaseCommand):
    help = (
        "Requeue failed (or cancelled) tasks from the step that stopped them, or from the "
        "first step with --from-start. The same rules as the admin's actions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--workflow",
            action="append",
            dest="workflows",
            metavar="NAME",
            help="Only tasks of this workflow (repeatable; default: every workflow).",
        )
        parser.add_argument(
            "--status",
            action="append",
            dest="statuses",
            choices=[TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.COMPLETED],
            help="Only tasks in this status (repeatable; default: failed). "
            "'completed' needs --from-start.",
        )
        parser.add_argument(
            "--since",
            type=moment,
            help="Only tasks that finished since then: an age (30m, 12h, 7d) or an ISO date, "
            "at most 100 years from now.",
        )
        parser.add_argument(
            "--from-start",
            action="store_true",
            help="Restart from the first step with an empty state.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")
        parser.add_argument(
            "--batch-size",
            type=batch_size,
            default=1000,
            help=f"Tasks per transaction, at most {MAX_BATCH_SIZE} (default: 1000).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        unknown = [name for name in options["workflows"] or [] if name not in registry]
        if unknown:
            known = ", ".join(registry.names()) or "none"
            raise CommandError(
                f"Unknown workflow(s): {', '.join(unknown)} (registered: {known}); "
                "their tasks could not run."
            )
        statuses = options["statuses"] or [TaskStatus.FAILED]
        if TaskStatus.COMPLETED in statuses and not options["from_start"]:
            raise CommandError("Completed tasks can only be restarted: add --from-start.")
        tasks = select_tasks(
            get_settings().DATABASE,
            workflows=options["workflows"] or (),
            statuses=statuses,
            finished_after=options["since"],
        )
        total = tasks.count()
        what = f"{total:,} task(s) ({', '.join(statuses)})"
        if options["dry_run"]:
            self.stdout.write(f"Would requeue {what}. Dry run: nothing changed.")
            return
        progress = Progress.on(self.stdout, total=total, verb="requeued")
        try:
            requeued = requeue_tasks(
                tasks,
                from_start=options["from_start"],
                batch_size=options["batch_size"],
                on_batch=progress.advance,
            )
        except InvalidTransition as exc:
            raise CommandError(str(exc)) from exc
        finally:
            progress.finish()
        skipped = total - requeued
        note = f", {skipped:,} skipped: moved meanwhile" if skipped > 0 else ""
        self.stdout.write(self.style.SUCCESS(f"Requeued {requeued:,} task(s){note}."))
