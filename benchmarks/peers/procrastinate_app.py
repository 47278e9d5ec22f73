"""The procrastinate app of ``procrastinate_chain.py``: three tasks, each deferring the next.

A module of its own so that the worker (``python -m procrastinate --app
benchmarks.peers.procrastinate_app.app worker``) and the submitter import one app.
Its ``PsycopgConnector`` connects to ``SALVADOR_BENCH_PROCRASTINATE_DB`` (default
``salvador_bench_procrastinate``) with a pool of ``SALVADOR_BENCH_PROCRASTINATE_POOL``
connections (default 4).
"""

from __future__ import annotations

import os
import time

from procrastinate import App, PsycopgConnector

from benchmarks.peers import common

DB = os.environ.get("SALVADOR_BENCH_PROCRASTINATE_DB", "salvador_bench_procrastinate")
POOL_ENV = "SALVADOR_BENCH_PROCRASTINATE_POOL"
POOL_SIZE = int(os.environ.get(POOL_ENV, "4"))
STEP3 = "peer_bench.step3"

app = App(
    connector=PsycopgConnector(conninfo=common.pg_url(DB), min_size=POOL_SIZE, max_size=POOL_SIZE)
)


@app.task(name="peer_bench.step1")
async def step1(n: int) -> None:
    """Step one: defer step two with this step's start time."""
    await step2.defer_async(n=n, started=time.time())


@app.task(name="peer_bench.step2")
async def step2(n: int, started: float) -> None:
    """Step two: a no-op deferring step three."""
    await step3.defer_async(n=n, started=started)


@app.task(name=STEP3)
async def step3(n: int, started: float) -> None:
    """Step three: a no-op."""
