"""The overview's charts and stuck panel, and the workers page, in a real browser, in
the light and the dark theme; screenshots for the docs (SALVADOR_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from salvador_django.conf import get_settings
from salvador_django.models import StepRun, Task
from salvador_django.registry import registry
from salvador_django.rollup import HOUR, hour_of, roll_up
from salvador_django.status import StepRunStatus, TaskStatus
from tests.browser.test_admin_triage import DOCS_IMAGES, PASSWORD, log_in
from tests.factories import TaskFactory, WorkerProcessFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: The workflows shown (the test app registers forty: the pictures show three).
SHOWN = ["breaks-second", "flaky", "three-steps"]
#: Per workflow: tasks an hour, share failed, typical step seconds.
TRAFFIC = {
    "three-steps": (40, 0.02, 0.08),
    "flaky": (25, 0.15, 0.6),
    "breaks-second": (8, 0.3, 2.5),
}


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """The docs' images with SALVADOR_SCREENSHOTS=1, else a temporary directory."""
    return DOCS_IMAGES if os.environ.get("SALVADOR_SCREENSHOTS") else tmp_path


@pytest.fixture(params=["light", "dark"])
def theme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def themed_page(browser, live_server, theme: str) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1600, "height": 900}, base_url=live_server.url, color_scheme=theme
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def three_workflows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "names", lambda: list(SHOWN))


def a_day_of_traffic() -> None:
    """24 hours of tasks and step attempts of the three workflows, a lull at night."""
    rng = random.Random(7)
    now = timezone.now()
    open_hour = hour_of(now)
    tasks, runs = [], []
    for workflow, (per_hour, failing, seconds) in TRAFFIC.items():
        for back in range(24):
            hour = open_hour - back * HOUR
            load = 0.3 if 8 <= back <= 14 else 1.0
            for _n in range(int(per_hour * load * rng.uniform(0.7, 1.3))):
                ended = hour + timedelta(seconds=rng.uniform(0, 3599))
                if ended >= now:
                    continue
                failed = rng.random() < failing * (3 if back in (4, 5) else 1)
                task = Task(
                    id=uuid.uuid4(),
                    workflow=workflow,
                    status=TaskStatus.FAILED if failed else TaskStatus.COMPLETED,
                    finished_at=ended,
                    failed_step="second" if failed else "",
                )
                tasks.append(task)
                took = rng.lognormvariate(0, 0.8) * seconds * (4 if back in (4, 5) else 1)
                runs.append(
                    StepRun(
                        task_id=task.id,
                        index=0,
                        name="first",
                        attempt=1,
                        status=StepRunStatus.FAILED if failed else StepRunStatus.COMPLETED,
                        started_at=ended - timedelta(seconds=took),
                        finished_at=ended,
                    )
                )
    database = get_settings().DATABASE
    Task.objects.using(database).bulk_create(tasks, batch_size=500)
    StepRun.objects.using(database).bulk_create(runs, batch_size=500)
    roll_up(database)


def overview_without_sidebar(page: Page, username: str) -> None:
    """Log in, open the overview and fold the admin's navigation sidebar away (for
    wider pictures: the admin remembers it)."""
    log_in(page, username)
    page.goto("/admin/salvador/overview/")
    page.click("#toggle-nav-sidebar")
    expect(page.locator("#nav-sidebar")).to_be_hidden()


def luminance(color: str) -> float:
    """The relative luminance (0 to 1) of a CSS ``rgb(r, g, b)`` colour."""
    red, green, blue = (int(part) / 255 for part in color[4:-1].split(",")[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def test_the_overview_charts_the_last_day_and_the_stuck_tasks(
    themed_page: Page, theme: str, three_workflows, screenshots: Path
):
    page = themed_page
    a_day_of_traffic()
    now = timezone.now()
    lost = TaskFactory(workflow="flaky", running=True, lease_expires_at=now - timedelta(minutes=2))
    TaskFactory(workflow="three-steps", run_after=now - timedelta(minutes=20))
    User.objects.create_superuser("ops", password=PASSWORD)
    overview_without_sidebar(page, "ops")

    charts = page.locator("svg.salvador-tasks-chart")
    expect(charts).to_have_count(3)
    expect(page.locator("svg.salvador-durations-chart")).to_have_count(3)
    row = page.locator('tr.salvador-activity-row[data-workflow="three-steps"]')
    expect(row.locator("svg.salvador-tasks-chart > title")).to_have_text(
        "three-steps: tasks completed and failed per hour"
    )
    expect(row.locator("g.salvador-chart-hour")).to_have_count(24)
    expect(row.locator("td.salvador-p95")).not_to_have_text("—")
    expect(page.locator("g.salvador-chart-missing")).to_have_count(0)

    # The axis labels read on the theme's background: dark text on light, light on dark.
    label = luminance(row.locator(".salvador-chart-axis text").first.evaluate(
        "node => getComputedStyle(node).fill"
    ))  # fmt: skip
    background = luminance(page.evaluate("getComputedStyle(document.body).backgroundColor"))
    assert abs(label - background) > 0.35
    assert (background < 0.5) == (theme == "dark")

    stuck = page.locator("section.salvador-stuck")
    expect(stuck.locator("li.salvador-stuck-lease .salvador-stuck-count")).to_have_text("1")
    expect(stuck.locator("li.salvador-stuck-due .salvador-stuck-count")).to_have_text("1")
    expect(stuck.locator("li.salvador-stuck-signal .salvador-stuck-count")).to_have_text("0")
    suffix = "" if theme == "light" else "-dark"
    page.locator("section.salvador-activity").screenshot(
        path=str(screenshots / f"overview-charts{suffix}.png")
    )
    stuck.screenshot(path=str(screenshots / f"overview-stuck{suffix}.png"))

    stuck.locator("li.salvador-stuck-lease a").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list tbody")).to_contain_text(lost.id.hex[:8])


def test_the_workers_page_shows_who_runs_what(themed_page: Page, theme: str, screenshots: Path):
    page = themed_page
    running = TaskFactory(workflow="three-steps", running=True, step_name="second")
    WorkerProcessFactory(
        name="web-1:4242:worker",
        host="web-1",
        pid=4242,
        running=[{"task": str(running.id), "workflow": "three-steps", "step": "second"}],
    )
    WorkerProcessFactory(name="web-2:5151:worker", host="web-2", pid=5151, workflows=["flaky"])
    WorkerProcessFactory(name="web-3:6060:celery", host="web-3", pid=6060, kind="celery", gone=True)
    User.objects.create_superuser("ops", password=PASSWORD)
    overview_without_sidebar(page, "ops")
    page.click("a.salvador-workers-link")

    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator(".salvador-badge.salvador-alive")).to_have_count(2)
    expect(page.locator(".salvador-badge.salvador-gone")).to_have_count(1)
    expect(rows.nth(0).locator("td.field-busy")).to_have_text("1 / 4")
    expect(rows.nth(1).locator("td.field-workflows_")).to_have_text("flaky")
    suffix = "" if theme == "light" else "-dark"
    page.screenshot(path=str(screenshots / f"workers{suffix}.png"), full_page=True)

    rows.nth(0).locator("ul.salvador-running a").click()
    expect(page.locator("h2").first).to_be_visible()
    assert str(running.id) in page.url
