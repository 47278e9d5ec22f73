"""Kept for imports written before ``tests/support``: new code imports from there."""

from tests.support.waiting import (
    assert_ran_in_order_once,
    run_in_threads,
    running_worker,
    wait_until,
)

__all__ = ["assert_ran_in_order_once", "run_in_threads", "running_worker", "wait_until"]
