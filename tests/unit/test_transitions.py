"""The task's state machine as data: every allowed and refused move, without a database."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from django.db.models import Case

from salvador_django import sql, transitions
from salvador_django.exceptions import InvalidTransition
from salvador_django.models import Task
from salvador_django.status import CompensationStatus, TaskStatus
from salvador_django.transitions.move import _columns_read, reading_first

P, R, C, F, X = "pending", "running", "completed", "failed", "cancelled"
W, Z = "waiting", "paused"

#: The contract, restated here on purpose: each move, the statuses it is allowed
#: from, whether a running compensation refuses it, and whether it is fenced.
EXPECTED = {
    "CLAIM": ({P}, False, False),
    "RENEW": ({R}, False, True),
    "CHECKPOINT": ({R}, False, True),
    "COMPLETE": ({R}, False, True),
    "RETRY": ({R}, False, True),
    "RELEASE": ({R}, False, True),
    "FAIL": ({R}, False, True),
    "END_CANCELLED": ({R}, False, True),
    "TAKE_OVER": ({R}, False, True),
    "START_COMPENSATION": ({R}, False, True),
    "COMPENSATE_STEP": ({R}, False, True),
    "END_COMPENSATION": ({R}, False, True),
    "FAIL_COMPENSATION": ({R}, False, True),
    "REAP": ({R}, False, False),
    "POISON": ({R}, False, False),
    "REQUEUE": ({F, X}, False, False),
    "RESTART": ({F, X, C}, False, False),
    "REQUEUE_FROM_STEP": ({F, X, C}, False, False),
    "CANCEL": ({P, W, Z, F}, True, False),
    "CANCEL_AND_COMPENSATE": ({P, W, Z}, True, False),
    "REQUEST_CANCEL": ({R}, True, False),
    "WAIT": ({R}, False, True),
    "WAKE": ({W}, False, False),
    "PAUSE": ({P, W}, True, False),
    "REQUEST_PAUSE": ({R}, True, False),
    "PAUSE_AFTER_STEP": ({R}, False, True),
    "RESUME": ({Z}, False, False),
    "WITHDRAW_PAUSE": ({P, R}, False, False),
}

#: Parameters each move's write takes (several sets where a flag changes what it writes).
PARAMS: dict[str, list[dict[str, Any]]] = {
    "CLAIM": [{"claimant": "w:1:abc", "lease_seconds": 60}],
    "RENEW": [{"lease_seconds": 60}],
    "CHECKPOINT": [
        {"step": 1, "step_name": "b", "state": {"k": 1}},
        {"step": 2, "step_name": "c", "state": {}, "progress": {"done": ["a", "b"]}, "error": ""},
    ],
    "COMPLETE": [
        {"step": 3, "step_name": "", "state": {}},
        {"step": 3, "step_name": "", "state": {}, "progress": {"done": ["a", "b", "c"]}},
    ],
    "RETRY": [
        {"step": 0, "step_name": "a", "delay": 1.5, "attempt": 1, "error": "E"},
        {"step": 2, "step_name": "b", "delay": 1.5, "attempt": 2},
    ],
    "RELEASE": [{}],
    "FAIL": [{"step": 1, "step_name": "b", "attempt": 3, "error": "E"}],
    "END_CANCELLED": [
        {"step": 1, "step_name": "b"},
        {"step": 1, "step_name": "b", "attempt": 2, "error": "E"},
    ],
    "TAKE_OVER": [{"claimant": "w:1:abc:timeout"}],
    "START_COMPENSATION": [
        {"step": 2, "step_name": "c", "error": "E", "cancelled": c, "hand_off": h}
        for c, h in itertools.product([False, True], repeat=2)
    ],
    "COMPENSATE_STEP": [
        {"step": 1, "step_name": "b", "state": {}},
        {"step": 1, "step_name": "b", "state": {}, "progress": {"done": ["a"]}},
    ],
    "END_COMPENSATION": [{"cancelled": False, "error": "E"}, {"cancelled": True, "error": ""}],
    "FAIL_COMPENSATION": [{"step": 2, "step_name": "b", "attempt": 1, "error": "E"}],
    "REAP": [{}],
    "POISON": [{"max_recoveries": 5}],
    "REQUEUE": [{}],
    "RESTART": [{"step": 0, "step_name": "a", "state": {}}],
    "REQUEUE_FROM_STEP": [{"step": 1, "step_name": "b", "state": {"k": 1}}],
    "CANCEL": [{}],
    "CANCEL_AND_COMPENSATE": [{}],
    "REQUEST_CANCEL": [{}],
    "WAIT": [{"waiting_for": "approval", "wake_at": None, "attempt": 0}],
    "WAKE": [{}],
    "PAUSE": [{}],
    "REQUEST_PAUSE": [{}],
    "PAUSE_AFTER_STEP": [{}],
    "RESUME": [{}],
    "WITHDRAW_PAUSE": [{}],
}


def statuses_written(value: Any) -> set[str]:
    """The statuses a move's write may leave: a value, or each outcome of a ``Case``."""
    if isinstance(value, Case):
        return {case.result.value for case in value.cases} | {value.default.value}
    return {value}


def move(name: str) -> transitions.Move:
    found = getattr(transitions, name)
    assert isinstance(found, transitions.Move)
    return found


def test_the_table_lists_every_move_once():
    assert {m.name for m in transitions.MOVES} >= {"claim", "checkpoint", "requeue", "poison"}
    assert sorted(EXPECTED) == sorted(
        name for name, value in vars(transitions).items() if isinstance(value, transitions.Move)
    )
    assert len(transitions.MOVES) == len(EXPECTED)


@pytest.mark.parametrize(
    ("name", "status", "compensation"),
    list(
        itertools.product(
            sorted(EXPECTED),
            list(TaskStatus),
            [CompensationStatus.NONE, CompensationStatus.RUNNING],
        )
    ),
)
def test_each_move_is_allowed_from_exactly_its_statuses(name, status, compensation):
    sources, refused_while_compensating, _ = EXPECTED[name]
    expected = status in sources and not (
        refused_while_compensating and compensation == CompensationStatus.RUNNING
    )
    assert move(name).allows(status, compensation) is expected


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fenced_moves_are_exactly_the_worker_s_own(name):
    assert move(name).fenced is EXPECTED[name][2]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_move_writes_only_its_declared_fields_and_a_status_it_may_leave(name):
    declared = move(name)
    model_fields = {field.name for field in Task._meta.concrete_fields}
    assert declared.fields <= model_fields
    written_by_some = set()
    for params in PARAMS[name]:
        changes = declared.changes(**params)
        assert set(changes) <= declared.fields, params
        written_by_some |= set(changes)
        if "status" in changes:
            assert statuses_written(changes["status"]) <= declared.targets, params
        else:  # the move keeps the status it started from
            assert declared.sources <= declared.targets, params
    assert written_by_some == declared.fields


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_write_comes_before_a_write_of_what_it_reads(name):
    """MySQL/MariaDB assign left to right, each seeing the assignments before it."""
    for params in PARAMS[name]:
        written = list(reading_first(move(name).changes(**params)))
        for position, field in enumerate(written):
            read = _columns_read(move(name).changes(**params)[field]) - {field}
            assert not read & set(written[:position]), (field, read, written)


def test_a_requeue_reads_the_compensation_before_it_rewrites_it():
    written = list(reading_first(transitions.REQUEUE.changes()))
    assert written.index("failed_step") < written.index("compensation")


def test_a_fenced_move_needs_the_claim_s_token():
    with pytest.raises(TypeError, match="fenced"):
        transitions.CHECKPOINT.rows(Task.objects.all())


def test_the_fence_is_the_token_and_the_running_status():
    query = str(transitions.FAIL.rows(Task.objects.all(), token="w:1:abc").query)
    assert "claimed_by" in query
    assert "w:1:abc" in query
    assert "running" in query


def test_a_refused_move_says_why_and_what_is_allowed():
    refusal = transitions.REQUEUE.refusal("t1", TaskStatus.RUNNING)
    assert isinstance(refusal, InvalidTransition)
    assert refusal.status == TaskStatus.RUNNING
    assert (
        str(refusal) == "Cannot requeue task t1: it is running; allowed while failed or cancelled."
    )
    refused = transitions.CANCEL.refusal("t1", TaskStatus.FAILED, CompensationStatus.RUNNING)
    assert "its compensation is running" in str(refused)


def _set_columns(statement: str) -> set[str]:
    """The columns an UPDATE's SET clause assigns."""
    clause = re.search(r"SET(.*?)(WHERE|FROM|$)", statement, re.S)
    assert clause is not None
    return set(re.findall(r"(\w+)\s*=", clause.group(1)))


def test_the_claim_statements_write_what_the_claim_move_declares():
    assert _set_columns(sql.TAKE) == transitions.CLAIM.fields | {"updated_at"}
    claims = (
        sql.CLAIM_POSTGRESQL,
        sql.CLAIM_SQLITE,
        sql.CLAIM_IDS_POSTGRESQL,
        sql.CLAIM_TAKE_MYSQL,
    )
    for statement in claims:
        assert "status = 'pending'" in statement  # claimed only from pending


def test_the_checkpoint_statement_writes_what_the_checkpoint_moves_declare():
    update = sql.CHECKPOINT_POSTGRESQL.split("RETURNING")[0]
    # A graph's checkpoint writes ``progress`` too; one that does not finish the task
    # starts the next step's count of lease expiries.
    names = {"table": "t", "runs": "r", "graph": ""}
    step = update.format(**names, recoveries=sql.RESET_RECOVERIES_POSTGRESQL, finish="")
    assert _set_columns(step) == transitions.CHECKPOINT.fields - {"progress"} | {"updated_at"}
    assert _set_columns("SET x = 1" + sql.GRAPH_POSTGRESQL) - {"x"} == {"progress"}
    assert "claimed_by = %s AND status = 'running'" in update  # fenced
    last = update.format(**names, recoveries="", finish=sql.FINISH_POSTGRESQL)
    assert _set_columns(last) == transitions.COMPLETE.fields - {"progress"} | {"updated_at"}


def test_mysql_s_checkpoint_writes_what_the_checkpoint_moves_declare():
    step, _ = sql.checkpoint_queries("mysql", "t", "r", graph=False, finish=False)
    assert _set_columns(step) == transitions.CHECKPOINT.fields - {"progress"} | {"updated_at"}
    last, insert = sql.checkpoint_queries("mysql", "t", "r", graph=True, finish=True)
    assert _set_columns(last) == transitions.COMPLETE.fields | {"updated_at"}
    assert "claimed_by = %s AND status = 'running'" in step  # fenced
    assert "`index`" in insert
