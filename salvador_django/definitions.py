"""Workflow definitions and the registry they enter when created."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from salvador_django.conf import get_settings
from salvador_django.exceptions import ConfigurationError
from salvador_django.graph import Graph, Node, build
from salvador_django.registry import autodiscover, registry
from salvador_django.retry import NO_RETRY, Retry
from salvador_django.schedules import CatchUp, Schedule

if TYPE_CHECKING:
    from salvador_django.models import Task

__all__ = ["Step", "StepFunction", "Workflow", "autodiscover", "registry"]

StepFunction = Callable[["Task"], Any]
Condition = Callable[["Task"], Any]
#: ``after`` left out: the step waits for the previously added one.
PREVIOUS: Any = object()

_NAME_MAX_LENGTH = 200


@dataclass(frozen=True)
class Step:
    """One named step of a workflow."""

    name: str
    fn: StepFunction
    retry: Retry | None = None  # None: the workflow's, else SALVADOR["RETRY"], else none
    timeout: float | None = None
    atomic: bool = False
    compensate: StepFunction | None = None  # undoes the step if the task fails later
    #: The steps it waits for, all of them (the previous step's name when left out).
    after: tuple[str, ...] = ()
    #: Steps it waits for to finish, of which at least one must have run (not skipped).
    after_any: tuple[str, ...] = ()
    #: Evaluated when the step becomes ready; false records it as skipped.
    when: Condition | None = None


class Workflow:
    """An ordered list of named steps, registered under ``name`` when created.

    ``retry`` is the default :class:`Retry` policy of its steps (a step's own
    ``retry=`` wins; without either, ``SALVADOR["RETRY"]`` applies, else one attempt).
    A second workflow with the same name raises ``ImproperlyConfigured``.
    """

    def __init__(
        self, name: str, *, retry: Retry | None = None, schedules: Sequence[Schedule] = ()
    ) -> None:
        _check_name(name, "workflow")
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"Workflow {name!r}: retry must be a salvador_django.Retry.")
        self.name = name
        self.retry = retry
        self._steps: list[Step] = []
        self._index: dict[str, int] = {}
        self._graph: Graph | None = None
        self._schedules: list[Schedule] = []
        #: Their names, for checks in constant time (thousands may be declared).
        self.schedule_names: set[str] = set()
        for schedule in schedules:
            self._add_schedule(schedule)
        registry.register(self)

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r}: {', '.join(self._index) or 'no steps'}>"

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps in the order they run."""
        return tuple(self._steps)

    @property
    def schedules(self) -> tuple[Schedule, ...]:
        """Its schedules, each with its name."""
        return tuple(self._schedules)

    def schedule(
        self,
        cron: str | None = None,
        every: timedelta | None = None,
        *,
        name: str | None = None,
        timezone: str = "UTC",
        body: Any = None,
        meta: Mapping[str, str] | None = None,
        catch_up: CatchUp = "latest",
        jitter: timedelta | None = None,
    ) -> Schedule:
        """Declare a :class:`Schedule` of this workflow (its arguments); returns it."""
        schedule = Schedule(
            cron, every, name=name, timezone=timezone, body=body, meta=meta,
            catch_up=catch_up, jitter=jitter,
        )  # fmt: skip
        registry.check_schedule_name(schedule.named(self.name).name, self.name)
        added = self._add_schedule(schedule)
        registry.changed()
        return added

    def _add_schedule(self, schedule: Schedule) -> Schedule:
        if not isinstance(schedule, Schedule):
            raise ConfigurationError(
                f"Workflow {self.name!r}: schedules must be salvador_django.Schedule, "
                f"not {type(schedule).__name__}."
            )
        schedule = schedule.named(self.name)
        assert schedule.name is not None
        if schedule.name in self.schedule_names:
            raise ConfigurationError(
                f"Workflow {self.name!r} has two schedules named {schedule.name!r}."
            )
        self._schedules.append(schedule)
        self.schedule_names.add(schedule.name)
        return schedule

    def retry_for(self, step: Step, task: Task | None = None) -> Retry:
        """The retry policy that applies to ``step`` (of ``task``, when known): its own,
        the workflow's, the global."""
        return step.retry or self.retry or get_settings().RETRY or NO_RETRY

    def index_of(self, step_name: str) -> int | None:
        """The position of the step named ``step_name``, or ``None``."""
        return self._index.get(step_name)

    @overload
    def step(
        self,
        name: str,
        fn: StepFunction,
        *,
        retry: Retry | None = ...,
        timeout: float | None = ...,
        compensate: StepFunction | None = ...,
        atomic: bool = ...,
        after: str | Sequence[str] = ...,
        after_any: Sequence[str] = ...,
        when: Condition | None = ...,
    ) -> Workflow: ...

    @overload
    def step(
        self,
        name: str,
        fn: None = ...,
        *,
        retry: Retry | None = ...,
        timeout: float | None = ...,
        compensate: StepFunction | None = ...,
        atomic: bool = ...,
        after: str | Sequence[str] = ...,
        after_any: Sequence[str] = ...,
        when: Condition | None = ...,
    ) -> Callable[[StepFunction], StepFunction]: ...

    def step(
        self,
        name: str,
        fn: StepFunction | None = None,
        *,
        retry: Retry | None = None,
        timeout: float | None = None,
        compensate: StepFunction | None = None,
        atomic: bool = False,
        after: str | Sequence[str] = PREVIOUS,
        after_any: Sequence[str] = (),
        when: Condition | None = None,
    ) -> Workflow | Callable[[StepFunction], StepFunction]:
        """Append a step; returns the workflow, or a decorator when ``fn`` is left out.

        ``retry`` is the step's :class:`Retry` policy (default: the workflow's);
        ``timeout`` fails an attempt that runs longer than that many seconds;
        ``atomic=True`` runs the step inside the transaction of its checkpoint;
        ``compensate`` undoes the step: when the task later fails for good or is
        cancelled, the compensations of its completed steps run in reverse order.
        """
        if fn is None:

            def decorator(func: StepFunction) -> StepFunction:
                self.step(
                    name,
                    func,
                    retry=retry,
                    timeout=timeout,
                    compensate=compensate,
                    atomic=atomic,
                    after=after,
                    after_any=after_any,
                    when=when,
                )
                return func

            return decorator

        _check_name(name, "step")
        if name in self._index:
            raise ConfigurationError(f"Workflow {self.name!r} already has a step named {name!r}.")
        if not callable(fn):
            raise TypeError(f"Step {name!r} of workflow {self.name!r}: fn must be callable.")
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"Step {name!r}: retry must be a salvador_django.Retry.")
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise ValueError(f"Step {name!r}: timeout must be a positive number of seconds.")
        if compensate is not None and not callable(compensate):
            raise TypeError(f"Step {name!r} of {self.name!r}: compensate must be callable.")
        if when is not None and not callable(when):
            raise ConfigurationError(f"Step {name!r} of {self.name!r}: when must be callable.")
        previous = (self._steps[-1].name,) if self._steps else ()
        waits_for = previous if after is PREVIOUS else _names(after, name, "after")
        waits_for_any = _names(after_any, name, "after_any")
        if name in waits_for or name in waits_for_any:
            raise ConfigurationError(
                f"Workflow {self.name!r} has a cycle: {name} waits for {name}. "
                "A step cannot wait, directly or not, for itself."
            )
        self._index[name] = len(self._steps)
        self._steps.append(
            Step(
                name=name,
                fn=fn,
                retry=retry,
                timeout=timeout,
                atomic=atomic,
                compensate=compensate,
                after=waits_for,
                after_any=waits_for_any,
                when=when,
            )
        )
        self._graph = None
        return self

    @property
    def graph(self) -> Graph:
        """The checked graph of the steps; raises :class:`ConfigurationError` if it is not one.

        ``after`` may name a step added later, so the graph is checked as a whole when
        first used: by the system checks (``manage.py check``, ``runworkflows``), by
        ``submit`` and by the worker.
        """
        graph = self._graph
        if graph is None:
            nodes = [
                Node(s.name, s.after, s.after_any, conditional=s.when is not None)
                for s in self._steps
            ]
            graph = self._graph = build(self.name, nodes)
        return graph

    def step_named(self, name: str) -> Step | None:
        """The step named ``name``, or ``None``."""
        index = self._index.get(name)
        return None if index is None else self._steps[index]

    def submit(
        self,
        body: Any = None,
        *,
        meta: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        delay: float | timedelta | None = None,
        run_after: datetime | None = None,
        priority: int = 0,
    ) -> Task:
        """Submit a task of this workflow; see :func:`salvador_django.submit`."""
        from salvador_django.submission import submit

        return submit(
            self,
            body,
            meta=meta,
            idempotency_key=idempotency_key,
            delay=delay,
            run_after=run_after,
            priority=priority,
        )


def _names(value: str | Sequence[str], step: str, what: str) -> tuple[str, ...]:
    """``after``/``after_any`` as a tuple of step names, checked for type and repeats."""
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise ConfigurationError(
            f"Step {step!r}: {what} must be a step name or a list of step names, not {value!r}."
        )
    if len(set(names)) != len(names):
        raise ConfigurationError(f"Step {step!r}: {what} names a step twice: {list(names)!r}.")
    return tuple(names)


def _check_name(name: object, kind: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"A {kind} name must be a non-empty string, not {name!r}.")
    if len(name) > _NAME_MAX_LENGTH:
        raise ConfigurationError(
            f"The {kind} name {name[:40]!r}… is over {_NAME_MAX_LENGTH} characters."
        )
