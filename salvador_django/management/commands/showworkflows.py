"""``manage.py showworkflows``: each registered workflow's steps and what each waits for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from salvador_django.definitions import registry
from salvador_django.exceptions import ConfigurationError
from salvador_django.outline import undo, waits_for

if TYPE_CHECKING:
    from salvador_django.definitions import Workflow
    from salvador_django.graph import Graph


def describe(workflow: Workflow) -> tuple[list[str], str | None]:
    """The lines that describe ``workflow``, and its graph's error if it is not one."""
    steps = workflow.steps
    graph: Graph | None = None
    error: str | None = None
    try:
        graph = workflow.graph
    except ConfigurationError as exc:
        error = str(exc)
    if not steps:
        return [f"{workflow.name}: no steps"], error
    straight = graph is not None and graph.linear
    kind = "straight line" if straight else "graph"
    count = f"{len(steps)} step" + ("" if len(steps) == 1 else "s")
    lines = [f"{workflow.name} ({kind}, {count})"]
    width = max(len(step.name) for step in steps)
    for number, step in enumerate(steps, 1):
        notes = [] if straight else [waits_for(step)]
        if step.compensate is not None:
            notes.append(undo(step))
        lines.append(f"  {number}. {step.name.ljust(width)}  {'; '.join(notes)}".rstrip())
    if error is not None:
        lines.append(f"  error: {error}")
    elif graph is not None and not straight:
        lines.append("  layers (the steps of a layer can run at the same time):")
        lines.extend(
            f"    {depth}. {', '.join(names)}" for depth, names in enumerate(graph.layers(), 1)
        )
    return lines, error


class Command(BaseCommand):
    help = (
        "Print each registered workflow (or those named) with its steps in order, what each "
        "waits for, and the layers of steps that can run at the same time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "workflows", nargs="*", metavar="NAME", help="Only these workflows (default: all)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        names: list[str] = options["workflows"] or registry.names()
        unknown = [name for name in names if name not in registry]
        if unknown:
            raise CommandError(
                f"No workflow named {', '.join(map(repr, unknown))} is registered "
                f"(registered: {', '.join(registry.names()) or 'none'})."
            )
        if not names:
            self.stdout.write("No workflow is registered.")
            return
        invalid = []
        for position, name in enumerate(names):
            lines, error = describe(registry.get(name))
            if position:
                self.stdout.write("")
            self.stdout.write("\n".join(lines))
            if error is not None:
                invalid.append(name)
        if invalid:
            raise CommandError(
                f"The graph of {', '.join(map(repr, invalid))} is not valid (see above)."
            )
