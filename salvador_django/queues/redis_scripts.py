"""The Redis queue's keys and the Lua scripts that move task ids between them.

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

Task ids are canonical UUIDs (lowercase, hyphenated). Anyone who can write to these
keys can put anything in them: the pop script drops (and returns, for the log) a list
element that is not a task id and a delayed member that is not ``"<band>:<id>"``, so
junk delays the tasks behind it by one pop at most and never reaches the database.
"""

from __future__ import annotations

import re

BELL_LENGTH = 64
PROMOTE_BATCH = 100
#: What is not a task id is dropped: at most this many list elements per pop (then it
#: returns, and the caller pops again), each logged cut to this many bytes.
JUNK_LIMIT = 100
JUNK_SAMPLE = 100
UUID_GROUPS = (8, 4, 4, 4, 12)
TASK_ID = re.compile(b"-".join(b"[0-9a-f]{%d}" % n for n in UUID_GROUPS))

# KEYS: entries, then for each workflow: queue band 0, 1, 2, delayed, bell.
# ARGV: band, task id, workflow index (1-based) for each entry, as triples.
PUSH = """
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
""".replace("BELL_LAST", str(BELL_LENGTH - 1))

# KEYS: entries, then for each workflow: delayed, bell.
# ARGV: the least delay in seconds on Redis' clock, then score, band:id, w triples.
SCHEDULE = """
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
""".replace("BELL_LAST", str(BELL_LENGTH - 1))

# Tidy up after this thread's claims since its last pop, promote due delayed entries,
# then pop one id: it leaves ``entries`` and is marked in flight until the next pop.
# What is not a task id (a list element that is not a canonical UUID, a delayed member
# that is not "<band>:<uuid>") is removed instead, never marked in flight, and returned
# cut to JUNK_SAMPLE + 1 bytes; the pop goes on past at most JUNK_LIMIT of them.
# KEYS: inflight, entries, then for each workflow (in the order to serve them): queue
# band 0, 1, 2, delayed. ARGV: "f:<id>" drops an in-flight mark; "c:<key index>:<id>"
# removes the entry of a task claimed straight from a bell. Returns {id or false,
# seconds until the next delayed entry or -1, the junk dropped}.
POP = """
local dropped = {}
local function drop(item)
    dropped[#dropped + 1] = string.sub(item, 1, JUNK_SAMPLE + 1)
end
local function is_id(s)
    return #s == 36 and string.find(s, 'UUID_PATTERN') ~= nil
end
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
        local band = string.find('012', string.sub(member, 1, 1), 1, true)
        redis.call('ZREM', KEYS[base + 4], member)
        if band and #member == 38 and string.sub(member, 2, 2) == ':'
            and is_id(string.sub(member, 3)) then
            redis.call('LPUSH', KEYS[base + band], string.sub(member, 3))
        else
            drop(member)
        end
    end
end
local found, junk = false, 0
for band = 0, 2 do
    for w = 0, workflows - 1 do
        local key = KEYS[3 + w * 4 + band]
        while not found and junk < JUNK_LIMIT do
            local id = redis.call('RPOP', key)
            if not id then break end
            if is_id(id) then
                redis.call('SREM', KEYS[2], id)
                redis.call('ZADD', KEYS[1], now, id)
                found = id
            else
                drop(id)
                junk = junk + 1
            end
        end
        if found or junk >= JUNK_LIMIT then break end
    end
    if found or junk >= JUNK_LIMIT then break end
end
local wait = -1
for w = 0, workflows - 1 do
    local first = redis.call('ZRANGE', KEYS[2 + w * 4 + 4], 0, 0, 'WITHSCORES')
    if first[2] then
        local seconds = tonumber(first[2]) - now
        if wait < 0 or seconds < wait then wait = seconds end
    end
end
return {found, tostring(wait), dropped}
"""
for _name, _value in {
    "PROMOTE_BATCH": PROMOTE_BATCH,
    "JUNK_LIMIT": JUNK_LIMIT,
    "JUNK_SAMPLE": JUNK_SAMPLE,
    "UUID_PATTERN": "^" + "%-".join("[0-9a-f]" * n for n in UUID_GROUPS) + "$",
}.items():
    POP = POP.replace(_name, str(_value))


def is_task_id(value: bytes) -> bool:
    """Whether ``value`` is a task id as the queue writes it: a canonical UUID."""
    return TASK_ID.fullmatch(value) is not None


def describe(junk: bytes) -> str:
    """A short, escaped, one-line account of ``junk`` (any bytes) for a log line."""
    sample = repr(junk[:JUNK_SAMPLE])
    return sample + "..." if len(junk) > JUNK_SAMPLE else sample


def band_of(priority: int) -> int:
    """The list band of a priority: 0 (high), 1 (normal) or 2 (low)."""
    return 0 if priority > 0 else 1 if priority == 0 else 2


#: The scripts a queue registers on connecting, by the name it calls them with.
SCRIPTS = {"push": PUSH, "schedule": SCHEDULE, "pop": POP}
