"""The module graph of salvador_django has no circle and follows the layers.

Every import counts, including those inside functions; imports under
``if TYPE_CHECKING:`` do not (they exist for annotations only). The layers are those
of docs/architecture.md: a module imports only from its own layer or below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import salvador_django

PACKAGE = "salvador_django"
ROOT = Path(salvador_django.__file__).resolve().parent

#: Bottom to top. A module's layer is that of the longest prefix listed.
LAYERS: list[set[str]] = [
    # 0: settings, errors, enums, the database's clock, the registry, the state machine
    {
        "exceptions", "status", "retry", "conf", "clock", "registry", "transitions", "sql",
        "dialect", "graph",
        "schema", "payloads", "links", "ticks", "schedules", "signals", "tracing", "logs",
        "histogram",
    },
    # 1: the tables and their queries
    {"queries", "models"},
    # 2: where workers find work
    {"queues", "events"},
    # 3: the workflow API: definitions and submitting
    {"definitions", "submission", "outline"},
    # 4: leases, the engine, operations on many tasks, checks before a worker starts
    {
        "leases", "engine", "maintenance", "preflight", "timers", "backoff", "scheduling",
        "metrics", "rollup", "tasks",
    },
    # 5: processes that run tasks
    {"worker", "pool", "worker_options", "presence"},
    # 6: the faces
    {
        "", "admin", "management", "contrib", "testing", "checks", "store_checks", "apps", "views",
        "urls", "health",
    },
]  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


MODULES = {
    module_name(path): path
    for path in ROOT.rglob("*.py")
    if "migrations" not in path.relative_to(ROOT).parts
}


def owner(name: str) -> str | None:
    """The module of ``salvador_django`` that ``name`` (a module or one of its names) is in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imported(module: str) -> set[str]:
    """The modules of the package that ``module`` imports (TYPE_CHECKING blocks aside)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                typing_only.update(id(child) for child in ast.walk(inner))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            found = owner(name) if name.startswith(PACKAGE) else None
            # "from salvador_django import x" names the package only to reach x.
            if found and found != module and not (found == PACKAGE and name == PACKAGE):
                targets.add(found)
    return targets


GRAPH = {module: imported(module) for module in MODULES}


def layer(module: str) -> int:
    relative = module.removeprefix(PACKAGE).lstrip(".")
    first = relative.split(".")[0]
    for number, names in enumerate(LAYERS):
        if first in names:
            return number
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_whole_package():
    assert len(MODULES) > 30
    assert "salvador_django.transitions" in GRAPH["salvador_django.models.operations"]
    # imports inside functions count (the pool's children import nothing lazily, but
    # definitions' Workflow.submit does)
    assert "salvador_django.submission" in GRAPH["salvador_django.definitions"]


def test_no_import_circle():
    assert circles(GRAPH) == []


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_layer_or_below(module):
    upward = sorted(target for target in GRAPH[module] if layer(target) > layer(module))
    assert upward == [], f"{module} (layer {layer(module)}) imports from above it: {upward}"


def test_models_never_import_definitions_queues_or_submission():
    forbidden = {"definitions", "queues", "submission"}
    reached = {target.split(".")[1] for target in GRAPH["salvador_django.models"]}
    assert not reached & forbidden


def test_core_never_imports_contrib():
    importers = sorted(
        module
        for module, targets in GRAPH.items()
        if not module.startswith("salvador_django.contrib")
        and any(t.startswith("salvador_django.contrib") for t in targets)
    )
    assert importers == []


def test_the_engine_does_not_know_queues_or_processes():
    for module, targets in GRAPH.items():
        if module.startswith("salvador_django.engine"):
            known = {t.split(".")[1] for t in targets}
            assert not known & {"queues", "worker", "pool", "contrib"}, module


def test_no_module_is_much_over_400_lines():
    lengths = {module: len(path.read_text().splitlines()) for module, path in MODULES.items()}
    assert {module: n for module, n in lengths.items() if n > 410} == {}
