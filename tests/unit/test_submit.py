import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from salvador_django import TaskStatus, get_task, submit
from salvador_django.definitions import registry
from salvador_django.exceptions import PayloadError, SalvadorError
from salvador_django.models import Task
from salvador_django.payloads import nested_deeper as _nested_deeper
from salvador_django.queues import get_queue

pytestmark = pytest.mark.django_db


def test_submit_persists_a_pending_task_at_the_first_step():
    task = submit("three-steps", {"item": "widget"}, meta={"tenant": "acme"}, priority=5)
    stored = get_task(task.id)
    assert stored.status == TaskStatus.PENDING
    assert (stored.step, stored.step_name) == (0, "first")
    assert stored.body == {"item": "widget"}
    assert stored.meta == {"tenant": "acme"}
    assert stored.priority == 5
    assert stored.state == {}
    assert stored.run_after <= timezone.now() + timedelta(seconds=1)
    assert task.run_after == stored.run_after  # read back from the database's clock


def test_workflow_submit_is_the_same_as_submit():
    task = registry.get("three-steps").submit([1, 2])
    assert get_task(task.id).body == [1, 2]


def test_body_size_counts_utf8_bytes(settings):
    settings.SALVADOR = {"MAX_BODY_BYTES": 100}
    submit("three-steps", "é" * 45)  # 92 bytes in UTF-8 (270 if escaped)
    with pytest.raises(
        PayloadError, match="The body is 102 bytes serialised; MAX_BODY_BYTES is 100"
    ):
        submit("three-steps", "é" * 50)


def test_payload_errors_are_salvador_errors_and_value_errors():
    assert issubclass(PayloadError, SalvadorError)
    assert issubclass(PayloadError, ValueError)


def test_delay_and_run_after_put_the_task_in_the_future():
    delayed = submit("three-steps", delay=3600)
    later = datetime.now(tz=UTC) + timedelta(days=1)
    scheduled = submit("three-steps", run_after=later)
    assert delayed.run_after > timezone.now() + timedelta(minutes=59)
    assert get_task(scheduled.id).run_after == later
    assert not Task.objects.due().exists()


def test_idempotency_key_returns_the_existing_task():
    first = submit("three-steps", {"n": 1}, idempotency_key="order-1001")
    second = submit("three-steps", {"n": 2}, idempotency_key="order-1001")
    other_workflow = submit("breaks-second", {}, idempotency_key="order-1001")
    assert second.id == first.id
    assert get_task(first.id).body == {"n": 1}
    assert other_workflow.id != first.id  # unique per workflow
    assert Task.objects.count() == 2


def test_enqueue_happens_only_when_the_transaction_commits(django_capture_on_commit_callbacks):
    wakeup = get_queue().wakeup
    before = wakeup.generation
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        submit("three-steps", {})
        assert wakeup.generation == before
    assert len(callbacks) == 1
    assert wakeup.generation == before + 1


def test_get_task_of_unknown_or_malformed_id_raises_does_not_exist():
    with pytest.raises(Task.DoesNotExist):
        get_task("00000000-0000-0000-0000-000000000000")
    with pytest.raises(Task.DoesNotExist):
        get_task("not-a-uuid")


def depth(value):
    """How many lists and dicts deep ``value`` nests (the reference for the fast check)."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def random_body(rng, room):
    """A JSON value whose strings are full of brackets, quotes and backslashes."""
    kind = rng.choice(["list", "dict", "scalar"] if room else ["scalar"])
    if kind == "list":
        return [random_body(rng, room - 1) for _ in range(rng.randint(0, 3))]
    if kind == "dict":
        return {random_text(rng): random_body(rng, room - 1) for _ in range(rng.randint(0, 3))}
    return rng.choice(
        [random_text(rng), rng.randint(-(10**20), 10**20), rng.random() * 1e-9, True, False, None]
    )


def random_text(rng):
    return "".join(rng.choice('[]{}"\\,:ab é\n\t') for _ in range(rng.randint(0, 6)))


def test_the_nesting_check_measures_what_a_walk_measures():
    rng = random.Random(23)
    for _ in range(2000):
        body = random_body(rng, rng.randint(0, 8))
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        for limit in range(9):
            assert _nested_deeper(data, limit) == (depth(body) > limit), (body, limit)
