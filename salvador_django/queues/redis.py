"""The Redis queue: workers block on Redis instead of polling the database.

Redis only carries hints ("look at task X"); the database stays the truth. The keys
(all under ``SALVADOR["KEY_PREFIX"]``: ``queue:<workflow>:<band>``, ``delayed:<workflow>``,
``bell:<workflow>``, ``entries``, ``inflight``) and the Lua scripts that move ids between
them are in :mod:`salvador_django.queues.redis_scripts`; the sweep's recovery of lost
entries is in :mod:`salvador_django.queues.redis_recovery`.

What is in Redis is not trusted: an element that is not a task id (in a list, a bell,
a delayed set or the in-flight set) is dropped and logged (a bounded, escaped sample),
and an id is claimed only if its task is due and of a workflow the caller serves. A
popped id of another workflow's due task is pushed to that workflow's list. So an
entry written by someone else can delay or reorder work, never stop a worker or run
a task that its worker does not serve.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings as django_settings
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.functions import Now

try:
    import redis
    from django_redis import get_redis_connection

    HAVE_REDIS = True
except ImportError:  # the "redis" extra is not installed; the system check says so
    HAVE_REDIS = False

from salvador_django.conf import get_settings
from salvador_django.exceptions import ConfigurationError, QueueUnavailable
from salvador_django.models import Task
from salvador_django.queues.base import Entry, Queue
from salvador_django.queues.redis_recovery import announce_missing, recover_inflight
from salvador_django.queues.redis_scripts import SCRIPTS, band_of, describe, is_task_id
from salvador_django.status import TaskStatus

if TYPE_CHECKING:
    from django.core.checks import CheckMessage

logger = logging.getLogger("salvador_django")

T = TypeVar("T")

_EARLY_RETRY_SECONDS = 0.25
_LONGEST_BLOCK_SECONDS = 1.0  # below any sane socket timeout


class RedisQueue(Queue):
    """Task hints in Redis, through a django-redis connection."""

    supports_wakeup = True

    def __init__(self, database: str) -> None:
        if not HAVE_REDIS:
            raise ConfigurationError(
                "The Redis queue needs django-redis: pip install 'salvador-django[redis]'."
            )
        super().__init__(database)
        settings = get_settings()
        self.prefix = settings.KEY_PREFIX
        self.connection_alias = settings.REDIS_CONNECTION
        self.stale_after = settings.LEASE_SECONDS
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._turn = 0
        self._lock = threading.Lock()
        self._claimed = threading.local()  # clean-ups this thread owes its next pop
        self._wakes = 0
        self._failing = False
        self._came_back = False  # reachable again since came_back() was last read

    # -- keys -------------------------------------------------------------------------

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    def _workflow_keys(self, workflow: str) -> list[str]:
        return [
            *(self.key("queue", workflow, band) for band in range(3)),
            self.key("delayed", workflow),
        ]

    # -- connection -------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            client = get_redis_connection(self.connection_alias)
            # The scripts first: another thread that sees the client uses them at once.
            self._scripts = {
                name: client.register_script(source) for name, source in SCRIPTS.items()
            }
            self._client = client
        return self._client

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        """Run a Redis operation; Redis errors become :class:`QueueUnavailable` (logged once)."""
        try:
            result = operation()
        except redis.RedisError as exc:
            if self._set_failing(True):
                logger.error(
                    "salvador: Redis unavailable (%s while %s); tasks wait in the database",
                    exc,
                    what,
                )
            raise QueueUnavailable(f"Redis unavailable while {what}: {exc}") from exc
        if self._failing and self._set_failing(False):
            logger.warning("salvador: Redis available again")
        return result

    def _set_failing(self, failing: bool) -> bool:
        """Record Redis's state; true if it changed (so threads log a change once)."""
        with self._lock:
            changed = self._failing != failing
            self._failing = failing
            if changed:
                self._came_back = not failing
        return changed

    def came_back(self) -> bool:
        with self._lock:
            back, self._came_back = self._came_back, False
        return back

    # -- announcing ---------------------------------------------------------------------

    def push(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        workflows = sorted({e.workflow for e in entries})
        keys = [self.key("entries")]
        for workflow in workflows:
            keys += [
                *(self.key("queue", workflow, band) for band in range(3)),
                self.key("delayed", workflow),
                self.key("bell", workflow),
            ]
        args: list[Any] = []
        for entry in entries:
            args += [
                band_of(entry.priority),
                str(entry.task_id),
                workflows.index(entry.workflow) + 1,
            ]
        self._call("pushing", lambda: self._scripts_ready()["push"](keys=keys, args=args))

    def schedule(self, entries: Sequence[Entry], *, least_delay: float = 0.0) -> None:
        """Hold ``entries`` in the delayed set until their ``run_after``.

        ``least_delay`` keeps an entry out for that long on Redis' clock whatever its
        ``run_after`` says (a task popped too early must not spin when Redis' clock runs
        ahead of the database's).
        """
        if not entries:
            return
        workflows = sorted({e.workflow for e in entries})
        keys = [self.key("entries")]
        for workflow in workflows:
            keys += [self.key("delayed", workflow), self.key("bell", workflow)]
        args: list[Any] = [repr(least_delay)]
        for entry in entries:
            # No run_after: due now on Redis' clock (the script's earliest), not ours.
            due = entry.run_after.timestamp() if entry.run_after else 0.0
            member = f"{band_of(entry.priority)}:{entry.task_id}"
            args += [repr(due), member, workflows.index(entry.workflow) + 1]
        self._call("scheduling", lambda: self._scripts_ready()["schedule"](keys=keys, args=args))

    def _scripts_ready(self) -> dict[str, Any]:
        self.client  # noqa: B018 - connects and registers the scripts
        return self._scripts

    # -- taking work ----------------------------------------------------------------------

    def claim(
        self,
        workflows: Sequence[str],
        timeout: float,
        *,
        token: str,
        lease_seconds: float,
        limit: int = 1,
    ) -> list[Task]:
        if not workflows:
            return []
        deadline = time.monotonic() + timeout
        bells = [self.key("bell", w) for w in workflows]
        wakes = self._wakes
        while True:
            task_id, wait = self._pop_one(workflows)
            if task_id is not None:
                claimed = self._claim(task_id, workflows, token, lease_seconds)
                if claimed:
                    return claimed
                continue  # a duplicate or stale entry: look at the next one
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._wakes != wakes:
                return []
            if 0 <= wait < remaining:
                remaining = wait
            # Short blocks: a socket timeout never fires, and sub-millisecond timeouts
            # (which old Redis versions treat as "forever") never reach Redis.
            block = min(max(remaining, 0.01), _LONGEST_BLOCK_SECONDS)
            rang = self._call("waiting", partial(self.client.blpop, bells, timeout=block))
            if rang is not None and rang[1] != b"1":
                claimed = self._claim_rung(rang[0], rang[1], workflows, token, lease_seconds)
                if claimed:
                    return claimed

    def _claim_rung(
        self, bell: bytes, rung: bytes, workflows: Sequence[str], token: str, lease_seconds: float
    ) -> list[Task]:
        """A push rang with its task's id: claim it at once, skipping the pop script.

        Its entry stays listed (a crash here loses nothing) until this thread's next
        pop removes it. What is neither a ring nor a task id is ignored, like a ring.
        """
        if not is_task_id(rung):
            logger.warning(
                "salvador: ignored a wake-up in %s that is not a task id: %s",
                bell.decode(errors="replace"),
                describe(rung),
            )
            return []
        claimed = Task.objects.using(self.database).claim_ids(
            [rung.decode()], token, lease_seconds, workflows=workflows
        )
        if claimed:
            task = claimed[0]
            self._tidy().append(("c", task.workflow, band_of(task.priority), str(task.id)))
        return claimed

    def _pop_one(self, workflows: Sequence[str]) -> tuple[str | None, float]:
        with self._lock:  # rotate the first workflow so that none starves the others
            self._turn = (self._turn + 1) % len(workflows)
            turn = self._turn
        ordered = [*workflows[turn:], *workflows[:turn]]
        keys = [self.key("inflight"), self.key("entries")]
        for workflow in ordered:
            keys += self._workflow_keys(workflow)
        tidy = self._tidy()
        args = [
            f"f:{task_id}"
            if kind == "f"
            else f"c:{keys.index(self.key('queue', workflow, band)) + 1}:{task_id}"
            for kind, workflow, band, task_id in tidy
            if kind == "f" or self.key("queue", workflow, band) in keys
        ]
        dropped, example = 0, b""
        while True:
            pop = partial(self._scripts_ready()["pop"], keys=keys, args=args)
            found, wait, junk = self._call("popping", pop)
            tidy.clear()
            args = []
            if not junk:
                break
            example = example if dropped else junk[0]
            dropped += len(junk)
            if found:
                break  # else the script stopped at its limit of junk, or found nothing
        if dropped:
            logger.warning(
                "salvador: dropped %d element(s) of the Redis queue (workflows %s) that are "
                "not task ids, such as %s",
                dropped,
                ", ".join(workflows),
                describe(example),
            )
        return (found.decode() if found else None), float(wait)

    def _tidy(self) -> list[tuple[str, str, int, str]]:
        """This thread's clean-ups for its next pop: (kind, workflow, band, task id)."""
        tidy: list[tuple[str, str, int, str]] = self._claimed.__dict__.setdefault("tidy", [])
        return tidy

    def _claim(
        self, task_id: str, workflows: Sequence[str], token: str, lease_seconds: float
    ) -> list[Task]:
        # If this raises (database down), the id stays in flight for the sweep to recover.
        claimed = Task.objects.using(self.database).claim_ids(
            [task_id], token, lease_seconds, workflows=workflows
        )
        # The in-flight mark is dropped by this thread's next pop: no round trip now.
        self._tidy().append(("f", "", 0, task_id))
        if not claimed:
            self._reroute(task_id, workflows)
        return claimed

    def _reroute(self, task_id: str, workflows: Sequence[str]) -> None:
        """Announce again a popped pending task this pop could not take, where it belongs.

        Not yet due: back to the delayed set. Due but of a workflow this pop does not
        serve (its id was written into another workflow's list): to its own list.
        """
        row = (
            Task.objects.using(self.database)
            .filter(id=task_id, status=TaskStatus.PENDING)
            .annotate(early=ExpressionWrapper(Q(run_after__gt=Now()), BooleanField()))
            .values("workflow", "priority", "run_after", "early")
            .first()
        )
        if row is None:
            return
        entry = Entry(uuid.UUID(task_id), row["workflow"], row["priority"], row["run_after"])
        if row["early"]:
            self.schedule([entry], least_delay=_EARLY_RETRY_SECONDS)
        elif row["workflow"] not in workflows:  # (one of ours lost a race: the sweep has it)
            self.push([replace(entry, run_after=None)])

    def wake(self) -> None:
        """Make this process's waiting pops return (within one short block, at most 1 s)."""
        with self._lock:
            self._wakes += 1

    # -- recovery ---------------------------------------------------------------------

    def reannounce(self, workflows: Sequence[str] | None = None) -> int:
        """Re-announce due pending tasks no entry carries, and entries lost in flight."""
        return self._recover_inflight() + self._announce_missing(workflows)

    def _recover_inflight(self) -> int:
        return recover_inflight(self)

    def _announce_missing(self, workflows: Sequence[str] | None) -> int:
        return announce_missing(self, workflows)

    # -- operations -------------------------------------------------------------------

    def ping(self) -> None:
        self._call("pinging", lambda: self.client.ping())

    def depth(self, workflow: str) -> dict[str, int]:
        """Entries waiting for ``workflow``, per band and delayed."""

        def read() -> list[int]:
            pipe = self.client.pipeline(transaction=False)
            for band in range(3):
                pipe.llen(self.key("queue", workflow, band))
            pipe.zcard(self.key("delayed", workflow))
            return list(pipe.execute())

        high, normal, low, delayed = self._call("reading the queue depth", read)
        return {"high": high, "normal": normal, "low": low, "delayed": delayed}

    def close(self) -> None:
        self._client = None

    @classmethod
    def check(cls, database: str) -> list[CheckMessage]:
        from django.core.checks import Error

        alias = get_settings().REDIS_CONNECTION
        if not HAVE_REDIS:
            return [
                Error(
                    "SALVADOR['QUEUE'] is 'redis' but django-redis is not installed.",
                    hint="pip install 'salvador-django[redis]'",
                    id="salvador.E020",
                )
            ]
        caches = getattr(django_settings, "CACHES", {})
        if alias not in caches:
            return [
                Error(
                    f"SALVADOR['REDIS_CONNECTION'] names the cache {alias!r}, "
                    "which is not in CACHES.",
                    hint="Add a django-redis cache under that alias.",
                    id="salvador.E021",
                )
            ]
        if not str(caches[alias].get("BACKEND", "")).startswith("django_redis."):
            return [
                Error(
                    f"CACHES[{alias!r}] is not a django-redis cache "
                    f"(BACKEND is {caches[alias].get('BACKEND')!r}).",
                    hint="Use BACKEND 'django_redis.cache.RedisCache'.",
                    id="salvador.E022",
                )
            ]
        return []
