"""A manager approves an order from the link in an email, in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from salvador_django import TaskStatus, submit
from salvador_django.models import Signal
from salvador_django.testing import run_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_approves_a_waiting_order_from_the_emailed_link(page: Page):
    task = submit("approval", {})
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.waiting_for) == (TaskStatus.WAITING, "approval")
    link = task.signal_url("approval", {"approved": True})  # as the email carries it

    page.goto(link)
    expect(page.locator("h1")).to_have_text("Send “approval”?")
    expect(page.locator(".salvador-link-workflow")).to_have_text("approval")
    expect(page.locator(".salvador-link-payload")).to_contain_text('"approved": true')
    task.refresh_from_db()
    assert task.status == TaskStatus.WAITING  # opening the link sent nothing
    assert not Signal.objects.filter(task_id=task.id).exists()

    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Done")
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING
    assert run_until_idle() == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    assert task.state["answer"] == {"approved": True}

    page.goto(link)  # the email opened again
    expect(page.locator("h1")).to_have_text("Already used")
    expect(page.locator("button")).to_have_count(0)
