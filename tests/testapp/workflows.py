"""Workflows the tests run. Each step records its execution as an ``Event`` row."""

import os
import signal
import threading
import time

from salvador_django import Retry, Workflow
from salvador_django.conf import get_settings
from tests.testapp.models import Event


def record(name, *, sleep=0.0, fail=False):
    """A step that records its start and end, optionally sleeping or failing."""

    def step(task):
        database = get_settings().DATABASE
        event = Event.objects.using(database).create(
            task_id=task.id, step=name, attempt=task.attempt, pid=os.getpid(), started=time.time()
        )
        seconds = (
            task.body.get("sleep", {}).get(name, sleep) if isinstance(task.body, dict) else sleep
        )
        if seconds:
            time.sleep(seconds)
        Event.objects.using(database).filter(pk=event.pk).update(finished=time.time())
        if fail or (isinstance(task.body, dict) and name in task.body.get("fail", [])):
            raise ValueError(f"{name} failed on purpose")
        task.state[name] = task.attempt
        return {"step": name}

    return step


three_steps = Workflow("three-steps")
for _name in ("first", "second", "third"):
    three_steps.step(_name, record(_name))

breaks_second = (
    Workflow("breaks-second")
    .step("first", record("first"))
    .step("second", record("second", fail=True))
    .step("third", record("third"))
)

flaky = Workflow("flaky")


@flaky.step("unreliable", retry=Retry(max_attempts=3, initial_delay=0.05, backoff=1, jitter=False))
def unreliable(task):
    if task.attempt < task.body["succeed_on"]:
        raise ConnectionError(f"attempt {task.attempt} failed")
    return task.attempt


@flaky.step("after")
def after(task):
    return "done"


atomic = Workflow("atomic")


@atomic.step("write", atomic=True)
def write(task):
    Event.objects.using(get_settings().DATABASE).create(
        task_id=task.id, step="write", attempt=task.attempt, pid=os.getpid(), started=time.time()
    )
    if task.body.get("fail"):
        raise RuntimeError("rolled back")


# A saga: reserving and charging are undone if a later step fails for good.
saga = (
    Workflow("saga")
    .step("reserve", record("reserve"), compensate=record("undo-reserve"))
    .step("charge", record("charge"), compensate=record("undo-charge"))
    .step("notify", record("notify"))
    .step("ship", record("ship"))
)

# A step that never returns (for the worker: it sleeps an hour) and times out.
hangs = Workflow("hangs-forever").step(
    "stuck", lambda task: time.sleep(3600), timeout=1, retry=Retry(max_attempts=2, initial_delay=0)
)

# A poison step: it kills the process running it, every time.
kills_worker = Workflow("kills-worker").step(
    "crash", lambda task: os.kill(os.getpid(), signal.SIGKILL)
)

# A poison step that ends its process with an exit status, as os._exit does.
exits_worker = Workflow("exits-worker").step("exit", lambda task: os._exit(1))


def append_to_log(task):
    """Append one line to the file named by the body: which claim started which step."""
    line = f"{task.step} {task.claimed_by} {time.time()}\n"
    with open(task.body["log"], "a") as log:
        log.write(line)
    time.sleep(task.body.get("sleep", 0))


# Ten short steps that log each start to a file (the database-outage tests).
logged_steps = Workflow("logged-steps")
for number in range(10):
    logged_steps.step(f"step-{number}", append_to_log)

# Fails its first attempt and succeeds on the second, 1 s later (no jitter). Each
# attempt records an Event stamped with the worker's clock (the clock-skew tests).
retries_once = Workflow("retries-once")


@retries_once.step("try", retry=Retry(max_attempts=2, initial_delay=1, backoff=1, jitter=False))
def fails_first_attempt(task):
    now = time.time()
    Event.objects.using(get_settings().DATABASE).create(
        task_id=task.id,
        step="try",
        attempt=task.attempt,
        pid=os.getpid(),
        started=now,
        finished=now,
    )
    if task.attempt == 1:
        raise ConnectionError("the first attempt fails on purpose")
    return task.attempt


def record_waiting(name):
    """Like ``record``, but the step waits ``body["wait"][name]`` seconds on an Event.

    For processes run under libfaketime with ``FAKETIME_DONT_FAKE_MONOTONIC=1``: its
    version 0.9.10 (Debian 12) breaks ``time.sleep`` on Python 3.11 and later (an
    error, or a sleep longer by the offset: libfaketime issue 426); waits on locks work.
    """

    def step(task):
        database = get_settings().DATABASE
        event = Event.objects.using(database).create(
            task_id=task.id, step=name, attempt=task.attempt, pid=os.getpid(), started=time.time()
        )
        threading.Event().wait(task.body.get("wait", {}).get(name, 0))
        Event.objects.using(database).filter(pk=event.pk).update(finished=time.time())
        return {"step": name}

    return step


# Three steps like "three-steps", which wait instead of sleeping (the clock-skew tests).
waits = Workflow("waits")
for _name in ("first", "second", "third"):
    waits.step(_name, record_waiting(_name))


# A hung step with a timeout whose name is 200 four-byte characters (800 bytes of
# UTF-8, 2,400 as JSON escapes): a pool child's note about it must reach the
# supervisor whole (the process-pool tests).
LONG_STEP_NAME = "\U0001f422" * 200
hangs_long_name = Workflow("hangs-with-a-long-name").step(
    LONG_STEP_NAME, lambda task: time.sleep(3600), timeout=1, retry=Retry(max_attempts=1)
)


# -- waits --------------------------------------------------------------------------


def record_run(task, step):
    """Record that ``step`` (re)started: an Event row per run."""
    Event.objects.using(get_settings().DATABASE).create(
        task_id=task.id, step=step, attempt=task.attempt, pid=os.getpid(), started=time.time()
    )


# An order that waits for a manager's answer (the body's "timeout", in seconds).
approval = Workflow("approval")


@approval.step("reserve", compensate=lambda task: record_run(task, "undo-reserve"))
def reserve(task):
    record_run(task, "reserve")
    task.state["reserved"] = True


@approval.step("decide")
def decide(task):
    record_run(task, "decide")
    task.set_event("progress", "waiting for approval")
    answer = task.wait_for("approval", timeout=task.body.get("timeout"))
    task.set_event("progress", "decided")
    task.state["answer"] = answer
    return answer


@approval.step("finish")
def finish(task):
    record_run(task, "finish")


# A step that waits for two signals, then sleeps, then returns what it got.
several_waits = Workflow("several-waits")


@several_waits.step("collect")
def collect(task):
    record_run(task, "collect")
    first = task.wait_for("item")
    second = task.wait_for("item")
    task.sleep(task.body.get("sleep", 30))
    other = task.wait_for("other")
    return [first, second, other]


# A step that carries on after its wait times out.
times_out = Workflow("times-out")


@times_out.step("ask")
def ask(task):
    from salvador_django.exceptions import WaitTimeout

    try:
        return task.wait_for("answer", timeout=task.body.get("timeout", 5))
    except WaitTimeout:
        return "no answer"


# A step that sleeps until a time given in the body (ISO 8601).
sleeps_until = Workflow("sleeps-until")


@sleeps_until.step("nap")
def nap(task):
    from datetime import datetime

    record_run(task, "nap")
    task.sleep_until(datetime.fromisoformat(task.body["until"]))
    return "awake"


# A step whose wait is given what the body says (bad input, on purpose).
bad_wait = Workflow("bad-wait")


@bad_wait.step("wait")
def wait_as_told(task):
    from datetime import datetime

    call = task.body["call"]
    if call == "wait_for":
        task.wait_for(task.body["name"], timeout=task.body.get("timeout"))
    elif call == "sleep":
        task.sleep(task.body["duration"])
    elif call == "sleep_until":
        task.sleep_until(datetime.fromisoformat(task.body["until"]))
    elif call == "set_event":
        task.set_event(task.body["key"], task.body.get("value"))


# A step whose waits change order between runs (its code "changed" under the task).
changes_waits = Workflow("changes-waits")


@changes_waits.step("wait")
def wait_in_changing_order(task):
    ran_before = Event.objects.using(get_settings().DATABASE).filter(task_id=task.id).exists()
    record_run(task, "wait")
    task.wait_for("b" if ran_before else "a")


# A step that sleeps the body's "seconds" (relative to when it runs).
sleeps = Workflow("sleeps")


@sleeps.step("nap")
def nap_for(task):
    record_run(task, "nap")
    task.sleep(task.body["seconds"])


# -- children -----------------------------------------------------------------------

# A child: the square of the body's "n"; fails when the body says so.
square = Workflow("square")


@square.step("square")
def compute_square(task):
    record_run(task, "square")
    time.sleep(task.body.get("sleep", 0))
    if task.body.get("fail"):
        raise ValueError(f"no square for {task.body['n']}")
    return task.body["n"] ** 2


# A parent that maps "square" over range(count), then adds the squares up.
fan_out = Workflow("fan-out")


@fan_out.step("spread")
def spread(task):
    record_run(task, "spread")
    sleep, failing = task.body.get("sleep", 0), task.body.get("fail", [])
    bodies = [{"n": n, "fail": n in failing, "sleep": sleep} for n in range(task.body["count"])]
    task.state["squares"] = task.map("square", bodies)


@fan_out.step("total")
def total(task):
    return sum(task.state["squares"])


# A parent that starts children under keys and takes their failures as values.
keyed_children = Workflow("keyed-children")


@keyed_children.step("start")
def start_keyed(task):
    record_run(task, "start")
    children = [
        task.start_child("square", {"n": n, "fail": n == 2}, key=f"item-{n}") for n in (1, 2, 3)
    ]
    results = task.wait_for_children(children, return_exceptions=True)
    return [r if isinstance(r, int) else type(r).__name__ for r in results]


# A child that waits for the signal "go".
waits_for_go = Workflow("waits-for-go")


@waits_for_go.step("wait")
def wait_for_go(task):
    record_run(task, "wait")
    return task.wait_for("go")


# A parent whose children wait for "go" (the body's "count" of them), and a
# grandparent of them.
waiting_children = Workflow("waiting-children")


@waiting_children.step("start")
def start_waiting_children(task):
    record_run(task, "start")
    for _ in range(task.body.get("count", 2)):
        task.start_child("waits-for-go")
    return task.wait_for_children(timeout=task.body.get("timeout"))


nested_children = Workflow("nested-children")


@nested_children.step("start")
def start_nested(task):
    record_run(task, "start")
    return task.map("waiting-children", [{"count": 2}])


# A parent that starts a detached and an attached child, and completes without them.
leaves_children = Workflow("leaves-children")


@leaves_children.step("start")
def start_and_leave(task):
    task.start_child("waits-for-go", key="attached")
    task.start_child("waits-for-go", key="detached", detached=True)


# Bad input to start_child, as the body's "mode" says.
bad_child = Workflow("bad-child")


@bad_child.step("start")
def start_badly(task):
    mode = task.body["mode"]
    if mode == "unknown workflow":
        task.start_child("no-such-workflow")
    elif mode == "body not json":
        task.start_child("square", {"n": object()})
    elif mode == "positional key":
        task.start_child("square", {"n": 1}, key="#1")
    elif mode == "key twice":
        task.start_child("square", {"n": 1}, key="k")
        task.start_child("square", {"n": 2}, key="k")
    elif mode == "not a child":
        task.wait_for_children([task])


# A parent that starts three children and waits for the first one only.
waits_for_first = Workflow("waits-for-first")


@waits_for_first.step("start")
def start_three_wait_for_one(task):
    first, *_ = [task.start_child("waits-for-go") for _ in range(3)]
    return task.wait_for_children([first])


# A parent that waits for one child in each of two steps.
two_rounds = Workflow("two-rounds")


@two_rounds.step("first")
def first_round(task):
    task.start_child("waits-for-go", key="a")
    return task.wait_for_children()


@two_rounds.step("second")
def second_round(task):
    task.start_child("waits-for-go", key="b")
    return task.wait_for_children()


from tests.testapp import graph_workflows  # noqa: E402, F401 - registers the graph workflows

if os.environ.get("SALVADOR_TEST_SCHEDULES"):  # a worker of the schedule tests
    from tests.testapp import scheduled_workflows  # noqa: F401
