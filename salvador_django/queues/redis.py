"""The Redis queue: workers block on Redis instead of polling the database.

Redis only carries hints ("look at task X"); the database stays the truth. Keys,
all under ``SALVADOR["KEY_PREFIX"]``:

- ``queue:<workflow>:<band>``: FIFO lists of task ids; bands 0 (priority > 0),
  1 (priority 0) and 2 (priority < 0) are popped in that order;
- ``delayed:<workflow>``: sorted set of ``"<band>:<id>"`` by due time, moved to the
  lists atomically (Lua) by the pop that finds them due;
- ``bell:<workflow>``: a short list idle workers block on; every push rings it;
- ``entries``: the set of ids some list or delayed set carries (pushes are
  idempotent, and the sweep re-announces due tasks missing from it);
- ``inflight``: ids popped, by pop time (Redis' clock), until the popping thread's next
  pop; an id left there longer than a lease by Redis' clock (its worker died between
  pop and claim) is pushed again by the sweep if its task is still pending.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings as django_settings
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
from salvador_django.status import TaskStatus

if TYPE_CHECKING:
    from django.core.checks import CheckMessage

logger = logging.getLogger("salvador_django")

T = TypeVar("T")

_BELL_LENGTH = 64
_PROMOTE_BATCH = 100
_SWEEP_ROWS = 1000
_SWEEP_PAGES = 20
_EARLY_RETRY_SECONDS = 0.25
_LONGEST_BLOCK_SECONDS = 1.0  # below any sane socket timeout

# KEYS: entries, then for each workflow: queue band 0, 1, 2, delayed, bell.
# ARGV: band, task id, workflow index (1-based) for each entry, as triples.
_PUSH = """
local pushed = 0
for i = 1, #ARGV, 3 do
    local band, id, w = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])
    local base = 1 + (w - 1) * 5
    -- A new entry is queued; one waiting in the delayed set is due now instead.
    if redis.call('SADD', KEYS[1], id) == 1
        or redis.call('ZREM', KEYS[base + 4], band .. ':' .. id) == 1 then
        redis.call('LPUSH', KEYS[base + 1 + band], id)
        pushed = pushed + 1
    end
    redis.call('LPUSH', KEYS[base + 5], id)
    redis.call('LTRIM', KEYS[base + 5], 0, BELL_LAST)
end
return pushed
""".replace("BELL_LAST", str(_BELL_LENGTH - 1))

# KEYS: entries, then for each workflow: delayed, bell.
# ARGV: the least delay in seconds on Redis' clock, then score, band:id, w triples.
_SCHEDULE = """
local t = redis.call('TIME')
local earliest = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
    local score = math.max(tonumber(ARGV[i]), earliest)
    local member, w = ARGV[i + 1], tonumber(ARGV[i + 2])
    local id = string.sub(member, 3)
    redis.call('SADD', KEYS[1], id)
    redis.call('ZADD', KEYS[2 + (w - 1) * 2], score, member)
    redis.call('LPUSH', KEYS[3 + (w - 1) * 2], '1')
    redis.call('LTRIM', KEYS[3 + (w - 1) * 2], 0, BELL_LAST)
end
return 1
""".replace("BELL_LAST", str(_BELL_LENGTH - 1))

# Tidy up after this thread's claims since its last pop, promote due delayed entries,
# then pop one id: it leaves ``entries`` and is marked in flight until the next pop.
# KEYS: inflight, entries, then for each workflow (in the order to serve them): queue
# band 0, 1, 2, delayed. ARGV: "f:<id>" drops an in-flight mark; "c:<key index>:<id>"
# removes the entry of a task claimed straight from a bell. Returns {id or false,
# seconds until the next delayed entry or -1}.
_POP = """
for _, arg in ipairs(ARGV) do
    if string.sub(arg, 1, 1) == 'f' then
        redis.call('ZREM', KEYS[1], string.sub(arg, 3))
    else
        local sep = string.find(arg, ':', 3, true)
        local id = string.sub(arg, sep + 1)
        redis.call('LREM', KEYS[tonumber(string.sub(arg, 3, sep - 1))], -1, id)
        redis.call('SREM', KEYS[2], id)
    end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local workflows = (#KEYS - 2) / 4
for w = 0, workflows - 1 do
    local base = 2 + w * 4
    local due = redis.call('ZRANGEBYSCORE', KEYS[base + 4], '-inf', now, 'LIMIT', 0, PROMOTE_BATCH)
    for _, member in ipairs(due) do
        local band = tonumber(string.sub(member, 1, 1))
        redis.call('LPUSH', KEYS[base + 1 + band], string.sub(member, 3))
        redis.call('ZREM', KEYS[base + 4], member)
    end
end
local found = false
for band = 0, 2 do
    for w = 0, workflows - 1 do
        local id = redis.call('RPOP', KEYS[3 + w * 4 + band])
        if id then
            redis.call('SREM', KEYS[2], id)
            redis.call('ZADD', KEYS[1], now, id)
            found = id
            break
        end
    end
    if found then break end
end
local wait = -1
for w = 0, workflows - 1 do
    local first = redis.call('ZRANGE', KEYS[2 + w * 4 + 4], 0, 0, 'WITHSCORES')
    if first[2] then
        local seconds = tonumber(first[2]) - now
        if wait < 0 or seconds < wait then wait = seconds end
    end
end
return {found, tostring(wait)}
""".replace("PROMOTE_BATCH", str(_PROMOTE_BATCH))


def band_of(priority: int) -> int:
    """The list band of a priority: 0 (high), 1 (normal) or 2 (low)."""
    return 0 if priority > 0 else 1 if priority == 0 else 2


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
            self._client = get_redis_connection(self.connection_alias)
            self._scripts = {
                name: self._client.register_script(source)
                for name, source in (("push", _PUSH), ("schedule", _SCHEDULE), ("pop", _POP))
            }
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
        return changed

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
                claimed = self._claim(task_id, token, lease_seconds)
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
                # A push rang with its task's id: claim it at once, skipping the pop
                # script. Its entry stays listed (a crash here loses nothing) until
                # this thread's next pop removes it.
                claimed = Task.objects.using(self.database).claim_ids(
                    [rang[1].decode()], token, lease_seconds
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
        found, wait = self._call(
            "popping", lambda: self._scripts_ready()["pop"](keys=keys, args=args)
        )
        tidy.clear()
        task_id = found.decode() if isinstance(found, bytes) else (found or None)
        return task_id, float(wait)

    def _tidy(self) -> list[tuple[str, str, int, str]]:
        """This thread's clean-ups for its next pop: (kind, workflow, band, task id)."""
        tidy: list[tuple[str, str, int, str]] = self._claimed.__dict__.setdefault("tidy", [])
        return tidy

    def _claim(self, task_id: str, token: str, lease_seconds: float) -> list[Task]:
        # If this raises (database down), the id stays in flight for the sweep to recover.
        claimed = Task.objects.using(self.database).claim_ids([task_id], token, lease_seconds)
        # The in-flight mark is dropped by this thread's next pop: no round trip now.
        self._tidy().append(("f", "", 0, task_id))
        if not claimed:
            self._reschedule_if_early(task_id)
        return claimed

    def _reschedule_if_early(self, task_id: str) -> None:
        """A popped task that is pending but not yet due goes back to the delayed set."""
        row = (
            Task.objects.using(self.database)
            .filter(id=task_id, status=TaskStatus.PENDING, run_after__gt=Now())
            .values("workflow", "priority", "run_after")
            .first()
        )
        if row is not None:
            entry = Entry(uuid.UUID(task_id), row["workflow"], row["priority"], row["run_after"])
            self.schedule([entry], least_delay=_EARLY_RETRY_SECONDS)

    def wake(self) -> None:
        """Make this process's waiting pops return (within one short block, at most 1 s)."""
        with self._lock:
            self._wakes += 1

    # -- recovery ---------------------------------------------------------------------

    def reannounce(self, workflows: Sequence[str] | None = None) -> int:
        """Re-announce due pending tasks no entry carries, and entries lost in flight."""
        return self._recover_inflight() + self._announce_missing(workflows)

    def _recover_inflight(self) -> int:
        # In-flight marks are scored with Redis' clock (the pop script's TIME): so is
        # their age. This worker's clock may be minutes off.
        seconds, microseconds = self._call("sweeping", self.client.time)
        cutoff = seconds + microseconds / 1_000_000 - self.stale_after
        stale = self._call(
            "sweeping", lambda: self.client.zrangebyscore(self.key("inflight"), "-inf", cutoff)
        )
        if not stale:
            return 0
        ids = [s.decode() for s in stale]
        # Read the database first: if it fails, the ids stay in flight for the next sweep.
        pending = list(
            Task.objects.using(self.database).filter(id__in=ids, status=TaskStatus.PENDING)
        )
        self._call("sweeping", lambda: self.client.zrem(self.key("inflight"), *ids))
        self._call("sweeping", lambda: self.client.srem(self.key("entries"), *ids))
        entries = [Entry.of(task) for task in pending]  # due now: a late claim re-schedules
        self.push(entries)
        return len(entries)

    def _announce_missing(self, workflows: Sequence[str] | None) -> int:
        """Push due tasks, in the order workers take them, that no entry carries.

        Pages of the due backlog are checked from its head until one is fully
        carried (usually the first): a lost entry further back reaches the head before
        its task could have run anyway. At most ``_SWEEP_PAGES`` pages per sweep.
        """
        due = (
            Task.objects.using(self.database)
            .due(workflows)
            .values_list("id", "workflow", "priority")
        )
        announced = 0
        for page in range(_SWEEP_PAGES):
            rows = list(due[page * _SWEEP_ROWS : (page + 1) * _SWEEP_ROWS])
            if not rows:
                break
            ids = [str(row[0]) for row in rows]
            carried = self._call(
                "sweeping", partial(self.client.smismember, self.key("entries"), ids)
            )
            missing = [
                Entry(task_id, workflow, priority, None)
                for (task_id, workflow, priority), yes in zip(rows, carried, strict=True)
                if not yes
            ]
            self.push(missing)
            announced += len(missing)
            if not missing or len(rows) < _SWEEP_ROWS:
                break
        return announced

    # -- operations -------------------------------------------------------------------

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
