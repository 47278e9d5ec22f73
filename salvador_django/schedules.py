"""Schedules declared in code: a workflow submitted by cron expression or interval.

A :class:`Schedule` is attached to a workflow (``Workflow(..., schedules=[...])`` or
``workflow.schedule(...)``). Workers copy the schedules to the ``Schedule`` table
when they start (:mod:`salvador_django.scheduling`) and tick them from there; the
admin pauses, resumes and runs them. When a schedule ticks: :mod:`.ticks`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from salvador_django.exceptions import ConfigurationError
from salvador_django.ticks import (
    describe_cron,
    describe_interval,
    next_cron_tick,
    next_interval_tick,
    previous_cron_tick,
    previous_interval_tick,
    valid_cron,
)

__all__ = ["CATCH_UP", "Schedule"]

CatchUp = Literal["latest", "all", "none"]
#: What a schedule does with the ticks it missed (workers down): the most recent one
#: once, each of them (up to ``MAX_CATCH_UP``), or none.
CATCH_UP: tuple[CatchUp, ...] = ("latest", "all", "none")
_NAME_MAX_LENGTH = 150  # its idempotency keys add a tick time (``schedule:<name>:<tick>``)


@dataclass(frozen=True)
class Schedule:
    """When to submit a workflow on its own: ``cron`` or ``every``, not both.

    ``cron`` has five fields, or six with seconds first ("*/10 * * * * *"), and is
    read in ``timezone`` (an IANA name). ``every`` (at least one second) ticks at whole
    multiples of itself since the epoch. ``name`` defaults to ``"<workflow>:<cron or
    interval>"`` (plus its time zone, if not UTC) and is unique among all schedules.
    Each tick submits one task with ``body`` and ``meta`` (plus
    ``meta["scheduled_for"]``); ``jitter`` delays it by up to that much, at random.
    ``catch_up``: see :data:`CATCH_UP`.
    """

    cron: str | None = None
    every: timedelta | None = None
    name: str | None = None
    timezone: str = "UTC"
    body: Any = None
    meta: Mapping[str, str] | None = None
    catch_up: CatchUp = "latest"
    jitter: timedelta | None = None
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        what = f"Schedule {self.name!r}" if self.name else f"Schedule({self.expression()!r})"
        if (self.cron is None) == (self.every is None):
            raise ConfigurationError(f"{what}: give either cron or every, not both or neither.")
        if self.cron is not None and (not isinstance(self.cron, str) or not valid_cron(self.cron)):
            raise ConfigurationError(
                f"{what}: {self.cron!r} is not a cron expression (five fields, or six with "
                "seconds first, e.g. '0 3 * * *')."
            )
        if self.every is not None and (
            not isinstance(self.every, timedelta) or self.every < timedelta(seconds=1)
        ):
            raise ConfigurationError(f"{what}: every must be a timedelta of at least 1 second.")
        name = self.name
        if name is not None and (
            not isinstance(name, str) or not name.strip() or len(name) > _NAME_MAX_LENGTH
        ):
            raise ConfigurationError(
                f"{what}: a schedule name is a non-empty string of at most {_NAME_MAX_LENGTH} "
                "characters."
            )
        try:
            zone = ZoneInfo(self.timezone) if isinstance(self.timezone, str) else None
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
        if zone is None:
            raise ConfigurationError(f"{what}: unknown time zone {self.timezone!r}.")
        object.__setattr__(self, "zone", zone)
        if self.catch_up not in CATCH_UP:
            raise ConfigurationError(
                f"{what}: catch_up must be one of {', '.join(CATCH_UP)}, not {self.catch_up!r}."
            )
        if self.jitter is not None and (
            not isinstance(self.jitter, timedelta) or self.jitter < timedelta(0)
        ):
            raise ConfigurationError(f"{what}: jitter must be a timedelta of at least 0.")
        self._check_payload(what)

    def _check_payload(self, what: str) -> None:
        try:
            json.dumps(self.body, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{what}: its body is not JSON ({exc}).") from None
        meta = self.meta or {}
        if not isinstance(meta, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in meta.items()
        ):
            raise ConfigurationError(f"{what}: meta must map str to str.")
        if "scheduled_for" in meta:
            raise ConfigurationError(f"{what}: meta['scheduled_for'] is set by each tick.")

    def expression(self) -> str:
        """``cron``, or ``every`` in seconds ("every 300s")."""
        if self.cron is not None:
            return self.cron
        seconds = self.every.total_seconds() if isinstance(self.every, timedelta) else self.every
        return f"every {seconds:g}s"

    def describe(self) -> str:
        """In plain words: "At 03:00 (Europe/Paris)", "Every 5 minutes"."""
        if self.cron is not None:
            return f"{describe_cron(self.cron)} ({self.timezone})"
        assert self.every is not None
        return describe_interval(self.every)

    def named(self, workflow: str) -> Schedule:
        """This schedule with its name: its own, or ``"<workflow>:<expression>"`` (and its
        time zone, if not UTC: ``"report:0 3 * * * Europe/Paris"``)."""
        if self.name is not None:
            return self
        zone = "" if self.timezone == "UTC" else f" {self.timezone}"
        return replace(self, name=f"{workflow}:{self.expression()}{zone}")

    def next_tick(self, after: datetime) -> datetime:
        """Its first tick strictly after ``after`` (aware), in UTC."""
        if self.cron is not None:
            return next_cron_tick(self.cron, self.zone, after)
        assert self.every is not None
        return next_interval_tick(self.every, after)

    def previous_tick(self, before: datetime) -> datetime:
        """Its last tick strictly before ``before`` (aware), in UTC."""
        if self.cron is not None:
            return previous_cron_tick(self.cron, self.zone, before)
        assert self.every is not None
        return previous_interval_tick(self.every, before)
