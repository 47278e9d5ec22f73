"""Graph workflows the tests run: parallel, conditional and joining steps."""

import uuid

from salvador_django import Retry, Workflow
from tests.testapp.workflows import record

# a -> (b1, b2, b3, b4) -> join: the diamond. Each step records its run (``Event``).
diamond = Workflow("diamond")
diamond.step("a", record("a"), after=[])
for _name in ("b1", "b2", "b3", "b4"):
    diamond.step(_name, record(_name), after="a")


@diamond.step("join", after=["b1", "b2", "b3", "b4"])
def _join(task):
    record("join")(task)
    return {name: task.outputs[name] for name in ("b1", "b2", "b3", "b4")}


def _writes(key, value):
    def step(task):
        record(f"w-{value}")(task)
        task.state[key] = value
        task.state.pop("drop", None)
        return value

    return step


# Two parallel steps write the state: distinct keys merge, the same key: later wins.
merges = Workflow("merges")
merges.step("first", _writes("first", 1), after=[])
merges.step("second", _writes("second", 2), after=[])
merges.step("same-1", _writes("same", "one"), after="first")
merges.step("same-2", _writes("same", "two"), after="same-1")
merges.step("end", lambda task: dict(task.state), after=["second", "same-2"])

# Conditional steps: insurance runs only when asked; notify runs if any of them ran.
conditional = Workflow("conditional")
conditional.step("quote", record("quote"), after=[])
conditional.step(
    "insurance", record("insurance"), after="quote", when=lambda task: task.body.get("insure")
)
conditional.step(
    "upgrade", record("upgrade"), after="quote", when=lambda task: task.body.get("upgrade")
)
conditional.step("notify", record("notify"), after_any=["insurance", "upgrade"])
conditional.step("done", lambda task: sorted(task.outputs), after=["notify"])


def _bad_condition(task):
    raise RuntimeError("condition broke")


bad_condition = Workflow("bad-condition")
bad_condition.step("start", record("start"), after=[])
bad_condition.step(
    "guarded",
    record("guarded"),
    after="start",
    when=_bad_condition,
    retry=Retry(max_attempts=2, initial_delay=0.01, jitter=False),
)

booked: list[str] = []


def _book(name):
    def step(task):
        record(name)(task)
        return f"{name}-ref"

    return step


def _cancel(name):
    def undo(task):
        record(f"undo-{name}")(task)

    return undo


# Parallel branches, one of which fails for good; compensations run in reverse order.
branches_fail = Workflow("branches-fail")
branches_fail.step("start", record("start"), after=[], compensate=_cancel("start"))
branches_fail.step("flight", _book("flight"), after="start", compensate=_cancel("flight"))
branches_fail.step("hotel", _book("hotel"), after="start", compensate=_cancel("hotel"))
branches_fail.step("car", record("car"), after="start")
branches_fail.step("charge", record("charge"), after=["flight", "hotel", "car"])

# A branch that fails once and is retried while its sibling completes.
retried_branch = Workflow("retried-branch")
retried_branch.step("root", record("root"), after=[])
retried_branch.step(
    "flaky",
    record("flaky"),
    after="root",
    retry=Retry(max_attempts=3, initial_delay=0.01, jitter=False),
)
retried_branch.step("steady", record("steady"), after="root")
retried_branch.step("end", record("end"), after=["flaky", "steady"])


def _flaky_once(task):
    record("flaky")(task)
    if task.attempt < 2:
        raise ValueError("flaky failed on purpose")


retried_branch._steps[1] = retried_branch._steps[1].__class__(
    **{**retried_branch._steps[1].__dict__, "fn": _flaky_once}
)


def _wait_for(signal_name):
    def step(task):
        record(signal_name)(task)
        return task.wait_for(signal_name)

    return step


# Two parallel branches each wait for a signal of their own.
branch_waits = Workflow("branch-waits")
branch_waits.step("root", record("root"), after=[])
branch_waits.step("left", _wait_for("left"), after="root")
branch_waits.step("right", _wait_for("right"), after="root")
branch_waits.step("quick", record("quick"), after="root")
branch_waits.step(
    "end",
    lambda task: [task.outputs["left"], task.outputs["right"]],
    after=["left", "right", "quick"],
)


def _spawn(task):
    return task.map("square", [{"n": n} for n in range(3)])


# A parallel branch that maps over children while its sibling runs.
branch_children = Workflow("branch-children")
branch_children.step("root", record("root"), after=[])
branch_children.step("spread", _spawn, after="root")
branch_children.step("other", record("other"), after="root")
branch_children.step("end", lambda task: sum(task.outputs["spread"]), after=["spread", "other"])


def _cancels_itself(task):
    from salvador_django import get_task

    record("canceller")(task)
    get_task(task.id).cancel()


def _pauses_itself(task):
    from salvador_django import get_task

    record("pauser")(task)
    get_task(task.id).pause()


# A parallel step cancels (or pauses) its own task while its sibling still runs.
cancels_itself = Workflow("cancels-itself")
cancels_itself.step("root", record("root"), after=[])
cancels_itself.step("slow", record("slow", sleep=0.3), after="root")
cancels_itself.step("canceller", _cancels_itself, after="root")
cancels_itself.step("end", record("end"), after=["slow", "canceller"])

pauses_itself = Workflow("pauses-itself")
pauses_itself.step("root", record("root"), after=[])
pauses_itself.step("slow", record("slow", sleep=0.3), after="root")
pauses_itself.step("pauser", _pauses_itself, after="root")
pauses_itself.step("end", record("end"), after=["slow", "pauser"])

# A parallel step that outlives its timeout while its sibling completes.
hangs_in_branch = Workflow("hangs-in-branch")
hangs_in_branch.step("root", record("root"), after=[])
hangs_in_branch.step("hangs", record("hangs", sleep=3.0), after="root", timeout=0.3)
hangs_in_branch.step("quick", record("quick"), after="root")
hangs_in_branch.step("end", record("end"), after=["hangs", "quick"])


def _signals_sibling(task):
    from salvador_django import send_signal

    record("left")(task)
    send_signal(task.id, "right", "from-left", idempotency_key="left-sent-it")
    return task.wait_for("left", timeout=3600)


# "right" waits first; "left" then sends right's signal and waits with a timer, so the
# task waits for "left" (the soonest timer): the signal right got meanwhile wakes it.
signals_sibling = Workflow("signals-sibling")
signals_sibling.step("root", record("root"), after=[])
signals_sibling.step("right", _wait_for("right"), after="root")
signals_sibling.step("left", _signals_sibling, after="root")
signals_sibling.step("end", lambda task: task.outputs["right"], after=["left", "right"])

# A step waits for a signal (defined first) beside one that maps over children.
children_beside_signal = Workflow("children-beside-signal")
children_beside_signal.step("root", record("root"), after=[])
children_beside_signal.step("approval", _wait_for("ok"), after="root")
children_beside_signal.step("spread", _spawn, after="root")
children_beside_signal.step(
    "end",
    lambda task: [task.outputs["approval"], task.outputs["spread"]],
    after=["approval", "spread"],
)

# A straight line whose steps read the values the steps before them returned.
reads_outputs = Workflow("reads-outputs")
reads_outputs.step("one", lambda task: 1)
reads_outputs.step("two", lambda task: task.outputs["one"] + 1)
reads_outputs.step("both", lambda task: dict(task.outputs))

# An atomic step holds the run's lock while it runs: the three steps that end meanwhile
# have their checkpoints written together, once it is done.
batched = Workflow("batched")
batched.step("root", record("root"), after=[])
batched.step("holds", record("holds", sleep=0.4), after="root", atomic=True)
for _name in ("q1", "q2", "q3"):
    batched.step(_name, record(_name, sleep=0.05), after="root")
batched.step("join", record("join"), after=["holds", "q1", "q2", "q3"])


def _loses_its_connection(task):
    """The server drops this step's connection under it (as a restart would)."""
    from django.db import connections

    from salvador_django.conf import get_settings
    from tests.support.servers import drop_connections

    record("cut")(task)
    database = get_settings().DATABASE
    drop_connections(connections[database], own=True)
    with connections[database].cursor() as cursor:
        cursor.execute("SELECT 1")  # the step's next query finds its connection gone
    return "reached"


# A straight line and a graph whose step loses the task database's connection.
line_loses_db = Workflow("line-loses-db")
line_loses_db.step("cut", _loses_its_connection)
graph_loses_db = Workflow("graph-loses-db")
graph_loses_db.step("cut", _loses_its_connection, after=[])
graph_loses_db.step("other", record("other"), after=[])
atomic_loses_db = Workflow("atomic-loses-db")
atomic_loses_db.step("cut", _loses_its_connection, after=[], atomic=True)
atomic_loses_db.step("other", record("other"), after=[])


_COMMIT_FAILED: set[object] = set()  # tasks whose b1 made its commit fail (this process)


def _commit_fails_once(task):
    """Atomic: its first run also writes a row whose foreign key PostgreSQL and SQLite
    check at commit (Django's are deferred), so its transaction's commit fails."""
    from salvador_django.conf import get_settings
    from salvador_django.models import Signal

    record("b1")(task)
    database = get_settings().DATABASE
    if task.id not in _COMMIT_FAILED:
        _COMMIT_FAILED.add(task.id)
        Signal.objects.using(database).create(task_id=uuid.uuid4(), name="no-such-task")
    return "b1"


# An atomic branch whose commit fails while its sibling still runs.
commit_fails = Workflow("commit-fails")
commit_fails.step("a", record("a"), after=[])
commit_fails.step("b1", _commit_fails_once, after="a", atomic=True)
commit_fails.step("b2", record("b2", sleep=0.3), after="a")
commit_fails.step("join", record("join"), after=["b1", "b2"])
