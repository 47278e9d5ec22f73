"""A staff user pauses a schedule and runs it now from its page, in a real browser."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from playwright.sync_api import Page, expect

from salvador_django.conf import get_settings
from salvador_django.models import Schedule, Task
from tests.browser.test_admin_triage import PASSWORD, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_staff_user_pauses_a_schedule_and_runs_it_now(page: Page):
    user = User.objects.create_user("scheduler", password=PASSWORD, is_staff=True)
    for codename in ("view_schedule", "pause_schedule", "run_schedule", "view_task"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    row = Schedule(
        name="nightly", workflow="three-steps", cron="0 3 * * *", timezone="Europe/Paris"
    )
    row.next_run_at = row.definition().next_tick(timezone.now())
    row.save(using=get_settings().DATABASE)
    log_in(page, "scheduler")
    page.goto("/admin/salvador/schedule/")
    expect(page.locator("td.field-expression_")).to_have_text("0 3 * * * — At 03:00 (Europe/Paris)")
    page.click("th.field-name a")
    expect(page.locator("ol.salvador-upcoming li")).to_have_count(5)

    page.click("button.salvador-pause")
    expect(page.locator("ul.messagelist")).to_have_text("1 paused")
    expect(page.locator("button.salvador-pause")).to_have_count(0)
    expect(page.locator("button.salvador-resume")).to_be_visible()

    page.click("button.salvador-run")
    [task] = Task.objects.using(get_settings().DATABASE).filter(workflow="three-steps")
    message = page.locator("ul.messagelist")
    expect(message).to_have_text(f"1 submitted (three-steps {task.id.hex[:8]})")
    message.locator("a").click()
    expect(page.locator("div.field-idempotency_key")).to_contain_text("schedule:nightly:now:")

    page.goto(f"/admin/salvador/schedule/{row.pk}/history/")
    expect(page.locator("#change-history")).to_contain_text("Pause")
    expect(page.locator("#change-history")).to_contain_text(f"Run now: task {task.id}")
