"""The health endpoint: for load balancers and Kubernetes probes.

``GET /health/`` (under wherever ``salvador_django.urls`` is included) answers 200 when
every check passes and 503 when one fails, with a JSON body saying which::

    {"status": "ok", "checks": {
        "database": {"ok": true},
        "queue": {"ok": true},
        "workers": {"ok": true, "alive": 3, "missing": []},
        "due": {"ok": true, "oldest_age_seconds": 0.4, "max_age_seconds": 300}}}

- ``database``: the tasks' database answers.
- ``queue``: the queue's own server answers (Redis; the database queue has none).
- ``workers``: every registered workflow has a live worker (seen within a lease).
- ``due``: the task at the head of the queue (the next a worker takes) has been due
  for less than ``SALVADOR["HEALTH_MAX_DUE_AGE"]`` seconds.

``?check=database&check=queue`` runs only those (a web pod's liveness should not depend
on the workers). Each check is one small indexed query or a ping: no lock, and on
PostgreSQL a statement timeout of two seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connections, transaction
from django.db.models.functions import Now
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from salvador_django.conf import get_settings
from salvador_django.models import Task, WorkerProcess
from salvador_django.queues import get_queue
from salvador_django.registry import registry
from salvador_django.status import TaskStatus

#: The longest a check's query may run on PostgreSQL.
STATEMENT_TIMEOUT_MS = 2000

Check = Callable[[str], dict[str, Any]]


def database(alias: str) -> dict[str, Any]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def queue(alias: str) -> dict[str, Any]:
    get_queue().ping()
    return {"ok": True}


def workers(alias: str) -> dict[str, Any]:
    alive = list(WorkerProcess.objects.using(alias).alive().values_list("workflows", flat=True))
    covered: set[str] = set()
    for workflows in alive:
        if not workflows:  # runs every workflow it has registered
            covered = set(registry.names())
            break
        covered.update(workflows)
    missing = sorted(set(registry.names()) - covered)
    return {"ok": not missing, "alive": len(alive), "missing": missing}


def due(alias: str) -> dict[str, Any]:
    limit = get_settings().HEALTH_MAX_DUE_AGE
    head = (
        Task.objects.using(alias)
        .filter(status=TaskStatus.PENDING, run_after__lte=Now())
        .order_by("-priority", "run_after")  # the due index's order: the head of the queue
        .values_list("run_after", flat=True)
        .first()
    )
    age = 0.0 if head is None else max(0.0, (timezone.now() - head).total_seconds())
    return {"ok": age < limit, "oldest_age_seconds": round(age, 3), "max_age_seconds": limit}


CHECKS: dict[str, Check] = {"database": database, "queue": queue, "workers": workers, "due": due}


def run_checks(names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The results of the checks ``names`` (all by default); a check that raises fails."""
    alias = get_settings().DATABASE
    results: dict[str, dict[str, Any]] = {}
    for name in names or list(CHECKS):
        try:
            with transaction.atomic(using=alias):
                if connections[alias].vendor == "postgresql":
                    with connections[alias].cursor() as cursor:
                        cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
                results[name] = CHECKS[name](alias)
        except Exception as exc:
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    return results


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, else 503; the body says what each found."""
    names = request.GET.getlist("check")
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        return JsonResponse(
            {"error": f"unknown check(s): {', '.join(unknown)}; known: {', '.join(CHECKS)}"},
            status=400,
        )
    results = run_checks(names or None)
    ok = all(result["ok"] for result in results.values())
    body = {"status": "ok" if ok else "unhealthy", "checks": results}
    return JsonResponse(body, status=200 if ok else 503)
