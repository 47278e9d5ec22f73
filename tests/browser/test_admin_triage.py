"""An operator triages failed tasks in a real browser, against a live server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import Page, expect

from salvador_django.models import Task
from salvador_django.status import TaskStatus
from tests import factories
from tests.factories import TaskFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the pages are photographed: the docs' images with SALVADOR_SCREENSHOTS=1.

    A test run leaves the docs alone unless asked to refresh their screenshots.
    """
    return DOCS_IMAGES if os.environ.get("SALVADOR_SCREENSHOTS") else tmp_path


def log_in(page: Page, username: str) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text(username)


def failed_after_retries(**fields) -> Task:
    """A task whose second step failed three times, 20 s apart."""
    return factories.failed_after_retries(
        3,
        gap=20,
        workflow="breaks-second",
        body={"order": 1042, "items": ["sprocket", "widget"]},
        meta={"customer": "c-7", "tenant": "acme"},
        **fields,
    )


def test_an_operator_requeues_two_failed_tasks_from_the_list(page: Page):
    User.objects.create_superuser("ops", password=PASSWORD)
    failed = [failed_after_retries() for _ in range(2)]
    TaskFactory(completed=True)
    log_in(page, "ops")
    page.goto("/admin/salvador/task/")
    page.click("a.salvador-quick-filter.salvador-failed")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator(".salvador-badge")).to_have_text("Failed")
    for row in range(2):
        rows.nth(row).locator("input.action-select").check()
    page.select_option("select[name=action]", "requeue_action")
    page.click("button[name=index]")
    expect(page.locator("ul.messagelist")).to_have_text("2 requeued")
    expect(page.locator("#result_list tbody tr")).to_have_count(0)  # none failed any more
    page.click("a.salvador-quick-filter.salvador-pending")
    pending = page.locator("#result_list tbody tr")
    expect(pending).to_have_count(2)
    expect(pending.locator(".salvador-badge")).to_have_text(["Pending", "Pending"])
    assert {t.status for t in Task.objects.filter(pk__in=[t.pk for t in failed])} == {
        TaskStatus.PENDING
    }


def test_an_operator_reads_a_failed_task_and_requeues_it_from_its_page(
    page: Page, screenshots: Path
):
    User.objects.create_superuser("ops", password=PASSWORD)
    task = failed_after_retries()
    log_in(page, "ops")
    page.goto(f"/admin/salvador/task/{task.pk}/change/")
    timeline = page.locator("svg.salvador-timeline")
    expect(timeline).to_be_visible()
    expect(timeline.locator("rect.salvador-failed")).to_have_count(3)
    expect(timeline.locator("rect.salvador-completed")).to_have_count(1)
    expect(page.locator(".salvador-timeline-row.failed text")).to_have_text("2 · second")
    page.locator("details.salvador-traceback summary").first.click()
    expect(page.locator("details.salvador-traceback pre").first).to_contain_text("Traceback")
    page.screenshot(path=str(screenshots / "task-detail.png"), full_page=True)

    page.click("button.salvador-requeue")
    expect(page.locator("ul.messagelist")).to_have_text("1 requeued")
    expect(page.locator("div.field-status_ .salvador-badge")).to_have_text("Pending")
    expect(page.locator(".salvador-history")).to_contain_text("ops · Requeue from the failed step")


def test_a_staff_user_without_permission_gets_no_triage_action(page: Page, screenshots: Path):
    viewer = User.objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_task"))
    task = failed_after_retries()
    log_in(page, "viewer")
    page.goto("/admin/salvador/task/")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("select[name=action]")).to_have_count(0)  # no action at all
    page.goto(f"/admin/salvador/task/{task.pk}/change/")
    expect(page.locator("svg.salvador-timeline")).to_be_visible()
    expect(page.locator("button.salvador-triage-button")).to_have_count(0)
    page.goto("/admin/salvador/overview/")
    expect(page.locator("table.salvador-overview-table")).to_contain_text("breaks-second")
    page.screenshot(path=str(screenshots / "overview.png"), full_page=True)


def page_overflow(page: Page, selector: str) -> float:
    """How far the element (or the page itself) reaches past the viewport's right edge."""
    return float(
        page.evaluate(
            """selector => {
                const box = document.querySelector(selector).getBoundingClientRect();
                const page = document.documentElement.scrollWidth;
                return Math.max(box.right, page) - window.innerWidth;
            }""",
            selector,
        )
    )


def test_an_opened_traceback_stays_inside_the_page(page: Page):
    User.objects.create_superuser("ops", password=PASSWORD)
    task = failed_after_retries()
    path = "/srv/app/" + "/".join(f"package_{n}" for n in range(30)) + "/payments.py"
    long_line = "PaymentError: " + "declined-" * 40  # no space to break at
    task.step_runs.filter(attempt=3).update(
        traceback=f'Traceback (most recent call last):\n  File "{path}", line 7\n{long_line}\n'
    )
    log_in(page, "ops")
    page.goto(f"/admin/salvador/task/{task.pk}/change/")
    assert page_overflow(page, "#step_runs-group table") <= 0
    page.locator("details.salvador-traceback summary").last.click()
    expect(page.locator("details.salvador-traceback pre").last).to_contain_text("payments.py")
    assert page_overflow(page, "#step_runs-group table") <= 0


def test_the_overview_keeps_a_workflow_name_on_one_line(page: Page):
    User.objects.create_superuser("ops", password=PASSWORD)
    failed_after_retries()
    log_in(page, "ops")
    page.set_viewport_size({"width": 900, "height": 900})
    page.goto("/admin/salvador/overview/")
    names = page.locator("table.salvador-overview-table tbody th a")
    expect(names.first).to_be_visible()
    lines = names.evaluate_all("links => links.map(a => a.getClientRects().length)")
    assert set(lines) == {1}


def test_an_operator_requeues_a_completed_task_from_a_chosen_step(page: Page, screenshots: Path):
    User.objects.create_superuser("ops", password=PASSWORD)
    task = TaskFactory(completed=True, state={"first": 1, "second": 1, "third": 1})
    for index, name in enumerate(("first", "second", "third")):
        factories.StepRunFactory(task=task, index=index, name=name, state={name: 1})
    log_in(page, "ops")
    page.goto(f"/admin/salvador/task/{task.pk}/change/")
    form = page.locator("form.salvador-requeue-from-step")
    expect(form.locator("option")).to_have_text(["1 · first", "2 · second", "3 · third"])
    form.locator("select").select_option("second")
    page.screenshot(path=str(screenshots / "requeue-from-step.png"), full_page=True)
    form.locator("button").click()
    expect(page.locator("ul.messagelist")).to_have_text("Requeued from step second")
    expect(page.locator("div.field-status_ .salvador-badge")).to_have_text("Pending")
    expect(page.locator("div.field-progress_")).to_contain_text("1/3 · second")
    expect(page.locator(".salvador-history")).to_contain_text("ops · Requeue from step second")
    expect(page.locator("form.salvador-requeue-from-step")).to_have_count(0)  # pending now
