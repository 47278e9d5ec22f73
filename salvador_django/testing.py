"""Helpers for users' own tests."""

from __future__ import annotations

from collections.abc import Sequence

from salvador_django.conf import get_settings
from salvador_django.engine import Engine
from salvador_django.leases import Lease, new_token
from salvador_django.models import Task
from salvador_django.registry import registry


def run_until_idle(workflows: Sequence[str] | None = None, *, max_tasks: int = 10_000) -> int:
    """Run every due task in this thread, synchronously, until none is due.

    Tasks waiting for a retry's backoff are not due and stay pending. Works inside a
    test's transaction (no ``on_commit`` needed). Returns how many claims ran.
    """
    settings = get_settings()
    names = list(workflows) if workflows is not None else registry.names()
    engine = Engine(database=settings.DATABASE, worker_name="run_until_idle")
    tasks = Task.objects.using(settings.DATABASE)
    ran = 0
    while ran < max_tasks:
        token = new_token("run_until_idle")
        claimed = tasks.claim(names, token, settings.LEASE_SECONDS, limit=1)
        if not claimed:
            break
        engine.run(claimed[0], Lease(claimed[0].id, token))
        ran += 1
    return ran
