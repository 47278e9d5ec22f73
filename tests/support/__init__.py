"""What the tests share, in one place.

- ``processes``: every process a test starts runs in a process group of its own,
  killed whole at teardown (``start_in_group``, ``kill_group``, ``run_in_group``), and
  ``WorkerProcesses``, the machinery of the ``start_worker`` fixture.
- ``servers``: private PostgreSQL and Redis servers (``benchmarks/faults/servers.py``)
  and whether this process may start a private PostgreSQL.
- ``tasks``: ``make_tasks`` (many rows in one statement), ``make_due`` and
  ``expire_lease`` instead of sleeping out a backoff or a lease.
- ``waiting``: ``wait_until``, ``running_worker``, ``run_in_threads``,
  ``run_until_finished`` and ``assert_ran_in_order_once``.
"""
