"""The shape of a workflow: which steps wait for which, checked once.

A workflow's steps form a graph: each step waits for the steps it names in
``after`` (all of them) or ``after_any`` (all of them to finish, at least one to
have run). Left out, ``after`` is the previously added step, so a workflow that
names no dependencies is the straight line it always was. :func:`build` checks the
graph (unknown names, cycles) and gives a :class:`Graph` that says which steps are
ready once some are done.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from salvador_django.exceptions import ConfigurationError


@dataclass(frozen=True)
class Node:
    """One step as the graph sees it."""

    name: str
    after: tuple[str, ...]
    after_any: tuple[str, ...] = ()
    conditional: bool = False

    @property
    def dependencies(self) -> tuple[str, ...]:
        return self.after + tuple(name for name in self.after_any if name not in self.after)


@dataclass(frozen=True)
class Graph:
    """A checked workflow graph: its steps in definition order, and their dependencies."""

    workflow: str
    nodes: tuple[Node, ...]
    #: Whether every step waits for the one before it only, unconditionally: the
    #: straight line, run by the engine's plain loop.
    linear: bool

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.nodes)

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def ready(
        self, completed: Collection[str], skipped: Collection[str], busy: Collection[str] = ()
    ) -> list[Node]:
        """The steps not done nor ``busy`` whose dependencies are all done, in definition order."""
        done = set(completed) | set(skipped)
        return [
            node
            for node in self.nodes
            if node.name not in done
            and node.name not in busy
            and all(name in done for name in node.dependencies)
        ]

    def none_ran(self, node: Node, completed: Collection[str]) -> bool:
        """Whether ``node`` waits for any of several steps and every one of them was skipped."""
        return bool(node.after_any) and not any(name in completed for name in node.after_any)

    def downstream(self, names: Collection[str]) -> set[str]:
        """``names`` and every step that depends on one of them, directly or not."""
        found = set(names)
        changed = True
        while changed:
            changed = False
            for node in self.nodes:
                if node.name not in found and any(d in found for d in node.dependencies):
                    found.add(node.name)
                    changed = True
        return found

    def layers(self) -> list[list[str]]:
        """The steps by depth: roots first, each step one layer below its deepest dependency."""
        depth: dict[str, int] = {}
        for name in _topological(self.workflow, {n.name: n.dependencies for n in self.nodes}):
            deps = self.node(name).dependencies
            depth[name] = 1 + max((depth[d] for d in deps), default=-1)
        rows: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for node in self.nodes:
            rows[depth[node.name]].append(node.name)
        return rows


def build(workflow: str, nodes: Sequence[Node]) -> Graph:
    """Check the dependencies of ``nodes`` and return the graph.

    Raises :class:`ConfigurationError` naming an unknown step or a cycle.
    """
    known = {node.name for node in nodes}
    for node in nodes:
        unknown = [name for name in node.dependencies if name not in known]
        if unknown:
            raise ConfigurationError(
                f"Step {node.name!r} of workflow {workflow!r} waits for "
                f"{', '.join(map(repr, unknown))}, which the workflow does not have "
                f"(steps: {', '.join(sorted(known))})."
            )
    _topological(workflow, {node.name: node.dependencies for node in nodes})
    linear = all(
        not node.after_any
        and not node.conditional
        and node.after == ((nodes[i - 1].name,) if i else ())
        for i, node in enumerate(nodes)
    )
    return Graph(workflow, tuple(nodes), linear)


def _topological(workflow: str, deps: Mapping[str, Sequence[str]]) -> list[str]:
    """The names in an order where each comes after its dependencies; a cycle raises."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: being visited, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*path[path.index(name) :], name]
            raise ConfigurationError(
                f"Workflow {workflow!r} has a cycle: {' waits for '.join(cycle)}. "
                "A step cannot wait, directly or not, for itself."
            )
        state[name] = 1
        path.append(name)
        for dep in deps[name]:
            visit(dep)
        path.pop()
        state[name] = 2
        order.append(name)

    for name in deps:
        visit(name)
    return order
