"""When a schedule ticks: cron expressions in a time zone, and fixed intervals.

A cron expression is read by croniter, in the schedule's wall-clock time (its IANA
time zone, through ``zoneinfo``). Its ticks are then placed on the UTC time line,
where two rules settle the days the clocks change:

- A tick in the hour the clocks skip (02:30 on the day Paris springs forward) runs
  when they jump: at the first valid time after it (03:00 there). Several ticks in
  the skipped hour fall on that one instant, and so run once.
- A tick in the hour the clocks repeat (02:30 on the day Paris falls back) runs
  once, at its first occurrence.

An interval (``every``) ticks at whole multiples of itself since the Unix epoch, in
UTC: every five minutes is at :00, :05..., on every worker, whenever it started.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cron_descriptor import ExpressionDescriptor, Options
from croniter import croniter

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: No time zone has ever moved its clocks back by more than this at once.
_LONGEST_SHIFT = timedelta(hours=3)


def cron_fields(expression: str) -> int:
    """How many fields ``expression`` has (5, or 6 with seconds first)."""
    return len(expression.split())


def valid_cron(expression: str) -> bool:
    """Whether ``expression`` is a cron expression of 5 fields, or 6 with seconds first."""
    if cron_fields(expression) not in (5, 6):
        return False
    return bool(croniter.is_valid(expression, second_at_beginning=True))


def next_cron_tick(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first tick of ``expression`` in ``zone`` strictly after ``after`` (aware), in UTC."""
    after_utc = after.astimezone(UTC)
    wall = after_utc.astimezone(zone).replace(tzinfo=None, fold=0)
    # Wall times map onto the time line in order, so no tick after ``after`` has a
    # wall time at or before its own: start there.
    ticks = croniter(expression, wall, second_at_beginning=True)
    while True:
        candidate = on_the_time_line(ticks.get_next(datetime), zone)
        if candidate > after_utc:
            return candidate


def previous_cron_tick(expression: str, zone: ZoneInfo, before: datetime) -> datetime:
    """The last tick of ``expression`` in ``zone`` strictly before ``before`` (aware), in UTC."""
    before_utc = before.astimezone(UTC)
    local = before_utc.astimezone(zone)
    wall = local.replace(tzinfo=None, fold=0)
    if local.fold:  # in a repeated hour's second pass: ticks of its first pass lie later
        wall += _LONGEST_SHIFT  # on the wall clock, yet before ``before``
    ticks = croniter(expression, wall, second_at_beginning=True)
    while True:
        candidate = on_the_time_line(ticks.get_prev(datetime), zone)
        if candidate < before_utc:
            return candidate


def next_interval_tick(every: timedelta, after: datetime) -> datetime:
    """The first whole multiple of ``every`` since the epoch strictly after ``after``, in UTC."""
    step, elapsed = _microseconds(every, after)
    return _EPOCH + timedelta(microseconds=(elapsed // step + 1) * step)


def previous_interval_tick(every: timedelta, before: datetime) -> datetime:
    """The last whole multiple of ``every`` since the epoch strictly before ``before``, in UTC."""
    step, elapsed = _microseconds(every, before)
    return _EPOCH + timedelta(microseconds=((elapsed - 1) // step) * step)


def _microseconds(every: timedelta, moment: datetime) -> tuple[int, int]:
    """``every``, and ``moment`` since the epoch, in microseconds."""
    elapsed = moment.astimezone(UTC) - _EPOCH
    return every // timedelta(microseconds=1), elapsed // timedelta(microseconds=1)


def on_the_time_line(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of the naive wall-clock time ``wall`` in ``zone`` (see the module)."""
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant  # it exists (its first occurrence, if the hour repeats)
    # Skipped: the clocks jumped between the instants the two offsets give.
    # fold=1 reads it with the offset after the jump: an instant before the jump.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = instant
    if low > high:
        low, high = high, low
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):  # the jump: where the offset changes
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0) if high.microsecond else high


def describe_cron(expression: str) -> str:
    """``expression`` in plain words ("At 03:00, Monday through Friday"), by cron-descriptor."""
    options = Options()
    options.use_24hour_time_format = True
    return str(ExpressionDescriptor(expression, options).get_description())


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def describe_interval(every: timedelta) -> str:
    """``every`` in plain words: "Every 5 minutes", "Every 90 seconds", "Every day"."""
    seconds = every.total_seconds()
    for unit, size in _UNITS:
        count = seconds / size
        if count >= 1 and count == int(count):
            return f"Every {unit}" if count == 1 else f"Every {int(count)} {unit}s"
    return f"Every {seconds:g} seconds"
