"""A workflow with schedules, declared only in worker processes that set
``SALVADOR_TEST_SCHEDULES``: other tests' workers must not tick it."""

from datetime import timedelta

from salvador_django import Schedule, Workflow
from tests.testapp.workflows import record

ticking = Workflow(
    "ticking",
    schedules=[
        # catch_up="all": a tick noticed late (a busy machine) still runs, so the test
        # can ask for every tick.
        Schedule(every=timedelta(seconds=1), name="ticking-1s", catch_up="all"),
        Schedule("*/2 * * * * *", name="ticking-cron-2s", timezone="Europe/Paris", catch_up="all"),
    ],
)
ticking.step("tick", record("tick"))
