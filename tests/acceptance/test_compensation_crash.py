"""A worker killed in the middle of a compensation: compensation resumes, forward never."""

import signal

from salvador_django import TaskStatus, submit
from salvador_django.models import Task
from salvador_django.status import CompensationStatus
from tests.support.tasks import expire_lease
from tests.support.waiting import wait_until
from tests.testapp.models import Event


def test_sigkill_mid_compensation_resumes_the_compensation(backend, start_worker):
    task = submit("saga", {"fail": ["ship"], "sleep": {"undo-charge": 30}})
    first = start_worker("--concurrency", "1", sweep_interval=0.5)
    rows = Event.objects.using(backend).filter(task_id=task.id)
    wait_until(lambda: rows.filter(step="undo-charge").exists())
    first.signal(signal.SIGKILL)
    first.wait()
    Task.objects.using(backend).filter(id=task.id).update(body={"fail": ["ship"]})  # quick now
    assert expire_lease(task, backend) == 1  # the killed worker's lease ran out
    second = start_worker("--concurrency", "1", sweep_interval=0.5)
    wait_until(
        lambda: Task.objects.using(backend).get(id=task.id).status == TaskStatus.FAILED, timeout=30
    )
    steps = list(rows.order_by("id").values_list("step", "pid"))
    assert [s for s, _ in steps] == [
        "reserve", "charge", "notify", "ship", "undo-charge", "undo-charge", "undo-reserve"
    ]  # fmt: skip
    assert {pid for s, pid in steps[:5]} == {first.pid}
    assert {pid for s, pid in steps[5:]} == {second.pid}
    stored = Task.objects.using(backend).get(id=task.id)
    assert stored.compensation == CompensationStatus.COMPLETED
    assert stored.error == "ValueError: ship failed on purpose"
