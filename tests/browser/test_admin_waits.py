"""An operator answers, pauses and resumes a waiting task in a real browser."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from salvador_django import submit
from salvador_django.models import Signal, Task
from salvador_django.status import TaskStatus
from salvador_django.testing import run_until_idle
from tests.browser.test_admin_triage import PASSWORD, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def waiting_approval() -> Task:
    task = submit("approval", {"timeout": 86_400})
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.waiting_for) == (TaskStatus.WAITING, "approval")
    return task


def test_an_operator_sends_the_signal_a_waiting_task_waits_for(page: Page):
    User.objects.create_superuser("ops", password=PASSWORD)
    task = waiting_approval()
    log_in(page, "ops")
    page.goto(f"/admin/salvador/task/{task.pk}/change/")
    badge = page.locator("div.field-status_ .salvador-badge")
    expect(badge).to_have_text("Waiting")
    expect(page.locator("div.field-waiting_for_")).to_contain_text("signal 'approval' · until")
    expect(page.locator("svg.salvador-timeline rect.salvador-wait-open")).to_have_count(1)
    expect(page.locator("table.salvador-events")).to_contain_text('"waiting for approval"')

    page.click("a.salvador-signal-link")
    expect(page.locator("#id_name")).to_have_value("approval")  # the name it waits for
    page.fill("#id_payload", "{approved: true}")
    page.click("input[type=submit]")
    expect(page.locator("p.errornote")).to_contain_text("Nothing was sent.")
    expect(page.locator(".field-payload .errorlist")).to_contain_text("Not valid JSON")
    assert not Signal.objects.filter(task_id=task.pk).exists()

    page.fill("#id_payload", '{"approved": true, "by": "ops"}')
    page.click("input[type=submit]")
    expect(page.locator("ul.messagelist")).to_have_text(
        "Signal 'approval' sent: the task is due again."
    )
    expect(badge).to_have_text("Pending")
    expect(page.locator(".salvador-history")).to_contain_text("ops · Send signal 'approval'")
    assert run_until_idle() == 1
    page.reload()
    expect(badge).to_have_text("Completed")
    expect(page.locator("svg.salvador-timeline rect.salvador-wait")).to_have_count(1)
    expect(page.locator("a.salvador-signal-link")).to_have_count(0)  # finished: no signal
    task.refresh_from_db()
    assert task.state["answer"] == {"approved": True, "by": "ops"}


def test_an_operator_pauses_and_resumes_a_waiting_task(page: Page):
    User.objects.create_superuser("ops", password=PASSWORD)
    task = waiting_approval()
    log_in(page, "ops")
    page.goto(f"/admin/salvador/task/{task.pk}/change/")
    badge = page.locator("div.field-status_ .salvador-badge")
    expect(page.locator("button.salvador-resume")).to_have_count(0)
    page.click("button.salvador-pause")
    expect(page.locator("ul.messagelist")).to_have_text("1 paused")
    expect(badge).to_have_text("Paused")
    expect(page.locator("div.field-waiting_for_")).to_contain_text(
        "its timer does not fire while the task is paused"
    )
    expect(page.locator("button.salvador-pause")).to_have_count(0)
    page.click("button.salvador-resume")
    expect(page.locator("ul.messagelist")).to_have_text("1 resumed")
    expect(badge).to_have_text("Pending")
    expect(page.locator(".salvador-history")).to_contain_text("ops · Resume")
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING
