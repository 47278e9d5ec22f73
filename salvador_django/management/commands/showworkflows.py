"""``manage.py showworkflows``: each registered workflow's steps and what each waits for."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from salvador_django.definitions import registry
from salvador_django.exceptions import ConfigurationError

if TYPE_CHECKING:
    from salvador_django.definitions import Step, Workflow


def callable_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, or its repr (a ``functools.partial``)."""
    qualname = getattr(fn, "__qualname__", None)
    if qualname is None:
        return repr(fn)
    module = getattr(fn, "__module__", None)
    return f"{module}.{qualname}" if module else str(qualname)


def waits_for(step: Step) -> str:
    """E.g. "after: a, b; after any: x, y; when: app.workflows.wanted", or "root"."""
    parts = []
    if step.after:
        parts.append(f"after: {', '.join(step.after)}")
    if step.after_any:
        parts.append(f"after any: {', '.join(step.after_any)}")
    if step.when is not None:
        parts.append(f"when: {callable_name(step.when)}")
    return "; ".join(parts) if step.after or step.after_any else "; ".join(["root", *parts])


def describe(workflow: Workflow) -> tuple[list[str], str | None]:
    """The lines that describe ``workflow``, and its graph's error if it is not one."""
    steps = workflow.steps
    try:
        graph = workflow.graph
    except ConfigurationError as exc:
        graph, error = None, str(exc)
    else:
        error = None
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
            notes.append(f"undo: {callable_name(step.compensate)}")
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
