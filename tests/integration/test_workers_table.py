"""Workers register in the workers table, say what they run, and leave; /health/ reads it."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from salvador_django import TaskStatus, Workflow, submit
from salvador_django.clock import now_plus
from salvador_django.models import Task, WorkerKind, WorkerProcess
from salvador_django.presence import Presence, forget_gone
from salvador_django.queues import reset_queues
from salvador_django.registry import registry
from tests.support.waiting import running_worker, wait_until

release = threading.Event()
holds = Workflow("holds")


@holds.step("hold")
def hold(task: Any) -> None:
    release.wait(30)


def rows(backend: str) -> Any:
    return WorkerProcess.objects.using(backend)


def test_a_worker_registers_says_what_it_runs_and_leaves(backend, queue_name):
    release.clear()
    task = submit("holds", {})
    with running_worker(concurrency=2) as worker:
        wait_until(lambda: Task.objects.using(backend).get(id=task.id).status == "running")
        # The claim commits before the runner records its lease: wait for the lease too.
        wait_until(lambda: [lease.task_id for lease in worker.leases.snapshot()] == [task.id])
        worker.heartbeat()
        row = rows(backend).get()
        assert (row.name, row.kind, row.concurrency) == (worker.name, WorkerKind.WORKER, 2)
        assert row.queue == worker.queue.label()
        assert row.workflows == sorted(registry.names())
        assert row.running == [{"task": str(task.id), "workflow": "holds", "step": "hold"}]
        assert rows(backend).alive().count() == 1
        release.set()
        wait_until(lambda: Task.objects.using(backend).get(id=task.id).status == "completed")
        wait_until(lambda: not worker.leases.snapshot())  # the runner lets go after the write
        worker.heartbeat()
        assert rows(backend).get().running == []
    assert not rows(backend).exists()  # it left as it stopped


def test_a_worker_not_seen_for_a_lease_is_gone_and_forgotten_an_hour_later(backend):
    for name, silent in (("alive", 1), ("gone", 120), ("forgotten", 2 * 3600)):
        Presence(backend, name).register()
        rows(backend).filter(name=name).update(last_seen_at=now_plus(-silent))
    assert list(rows(backend).alive().values_list("name", flat=True)) == ["alive"]
    assert sorted(rows(backend).gone().values_list("name", flat=True)) == ["forgotten", "gone"]
    assert forget_gone(backend) == 1
    assert sorted(rows(backend).values_list("name", flat=True)) == ["alive", "gone"]


def test_a_beat_of_a_forgotten_worker_registers_it_again(backend):
    presence = Presence(backend, "host:1", queue="database", concurrency=3)
    presence.register()
    rows(backend).all().delete()
    presence.beat([])
    row = rows(backend).get()
    assert (row.name, row.concurrency, row.running) == ("host:1", 3, [])


def health(client: Any, *checks: str) -> tuple[int, dict[str, Any]]:
    query = "&".join(f"check={check}" for check in checks)
    response = client.get(f"/salvador/health/?{query}")
    return response.status_code, response.json()


def test_health_is_503_when_no_worker_is_alive(backend, client):
    status, body = health(client)
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["queue"] == {"ok": True}
    workers = body["checks"]["workers"]
    assert (workers["ok"], workers["alive"]) == (False, 0)
    assert workers["missing"] == sorted(registry.names())
    # The checks a web pod's liveness asks for do not need workers.
    assert health(client, "database", "queue")[0] == 200


def test_health_is_200_when_a_live_worker_runs_every_workflow(backend, client):
    Presence(backend, "one", workflows=["three-steps"]).register()
    status, body = health(client, "workers")
    assert status == 503
    assert "three-steps" not in body["checks"]["workers"]["missing"]
    Presence(backend, "all").register()  # no list: every registered workflow
    status, body = health(client)
    assert status == 200, body
    assert body["checks"]["workers"] == {"ok": True, "alive": 2, "missing": []}
    rows(backend).update(last_seen_at=now_plus(-3600))  # both died an hour ago
    assert health(client, "workers")[0] == 503


def test_health_is_503_when_the_head_of_the_queue_waited_too_long(backend, client, settings):
    settings.SALVADOR = {**settings.SALVADOR, "HEALTH_MAX_DUE_AGE": 60}
    task = submit("three-steps", {})
    status, body = health(client, "due")
    assert status == 200
    assert body["checks"]["due"]["oldest_age_seconds"] < 60
    Task.objects.using(backend).filter(id=task.id).update(run_after=now_plus(-600))
    status, body = health(client, "due")
    assert status == 503
    assert body["checks"]["due"]["ok"] is False
    assert 590 < body["checks"]["due"]["oldest_age_seconds"] < 3600
    Task.objects.using(backend).filter(id=task.id).update(status=TaskStatus.COMPLETED)
    assert health(client, "due")[0] == 200


@pytest.mark.only_backend("sqlite")
def test_health_is_503_when_redis_is_unreachable(backend, client, settings):
    settings.CACHES = {
        **settings.CACHES,
        "nowhere": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }
    settings.SALVADOR = {**settings.SALVADOR, "QUEUE": "redis", "REDIS_CONNECTION": "nowhere"}
    reset_queues()
    try:
        status, body = health(client, "queue", "database")
    finally:
        reset_queues()
    assert status == 503
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["queue"]["ok"] is False
    assert "QueueUnavailable" in body["checks"]["queue"]["error"]


def test_an_unknown_check_is_a_400(client, db):
    response = client.get("/salvador/health/?check=nope")
    assert response.status_code == 400
    assert "unknown check(s): nope" in response.json()["error"]


def test_a_registration_keeps_its_start_time_until_the_process_registers_again(backend):
    presence = Presence(backend, "host:2")
    presence.register()
    started = rows(backend).get().started_at
    assert timezone.now() - started < timedelta(minutes=5)
    rows(backend).update(started_at=Now() - timedelta(hours=1))
    presence.beat([])
    assert timezone.now() - rows(backend).get().started_at > timedelta(minutes=59)
