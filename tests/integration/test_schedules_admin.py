"""The Schedules page, through Django's test client against the real admin: list, page,
pause, resume, run now, permissions and history (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from salvador_django.models import Schedule, Task
from salvador_django.status import TaskStatus
from tests.factories import TaskFactory
from tests.integration.test_admin import shown_messages

pytestmark = pytest.mark.admin_db

LIST_URL = "/admin/salvador/schedule/"
PARIS = ZoneInfo("Europe/Paris")


def make(backend: str, name: str = "nightly", cron: str = "0 3 * * *", **fields) -> Schedule:
    """A schedule row of the registered workflow "three-steps", as a sync writes it."""
    fields.setdefault("timezone", "Europe/Paris")
    row = Schedule(name=name, workflow="three-steps", cron=cron, **fields)
    if "next_run_at" not in fields:
        row.next_run_at = row.definition().next_tick(timezone.now())
    row.save(using=backend)
    return row


def reloaded(backend: str, row: Schedule) -> Schedule:
    return Schedule.objects.using(backend).get(pk=row.pk)


def change_url(row: Schedule) -> str:
    return reverse("admin:salvador_schedule_change", args=[row.pk])


def switch_url(row: Schedule | int, operation: str) -> str:
    pk = row.pk if isinstance(row, Schedule) else row
    return reverse("admin:salvador_schedule_switch", args=[pk, operation])


def staff(*codenames: str) -> Client:
    user = User.objects.create_user(f"staff-{'-'.join(codenames)}", is_staff=True)
    for codename in ("view_schedule", *codenames):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def act(client: Client, action: str, rows: list[Schedule]) -> str:
    """Run a list action on ``rows``; returns the messages shown (HTML)."""
    response = client.post(
        LIST_URL, {"action": action, "_selected_action": [r.pk for r in rows]}, follow=True
    )
    assert response.status_code == 200
    return shown_messages_html(response.content.decode())


def shown_messages_html(html: str) -> str:
    found = re.findall(r'<li class="(?:success|warning|error|info)">(.*?)</li>', html, re.S)
    return " | ".join(found)


def history(row: Schedule) -> list[str]:
    entries = LogEntry.objects.filter(
        content_type__model="schedule", object_id=str(row.pk)
    ).order_by("action_time")
    return [entry.get_change_message() for entry in entries]


def cell(html: str, column: str, row: Schedule) -> str:
    """The text of ``column`` in ``row``'s line of the list."""
    line = html[html.index(f">{row.name}</a>") :]
    line = line[: line.index("</tr>")]
    match = re.search(rf'<td class="field-{column}[^"]*">(.*?)</td>', line, re.S)
    assert match, f"no {column} in {line}"
    return match.group(1)


# -- the list ---------------------------------------------------------------------------


def test_the_list_shows_expression_in_words_next_run_in_its_zone_and_last_run(
    backend, admin_client
):
    task = TaskFactory(completed=True)
    row = make(
        backend,
        next_run_at=datetime(2026, 7, 1, 1, tzinfo=UTC),  # 03:00 in Paris (summer time)
        last_run_at=datetime(2026, 6, 30, 1, tzinfo=UTC),
        last_task_id=task.pk,
    )
    html = admin_client.get(LIST_URL).content.decode()
    assert cell(html, "workflow", row) == "three-steps"
    assert unescape(cell(html, "expression_", row)) == (
        "<code>0 3 * * *</code> — At 03:00 (Europe/Paris)"
    )
    assert "2026-07-01 03:00:00 CEST (Europe/Paris)</time>" in cell(html, "next_run", row)
    last = cell(html, "last_run", row)
    assert "2026-06-30 03:00:00 CEST (Europe/Paris)" in last
    task_url = reverse("admin:salvador_task_change", args=[task.pk])
    assert f'<a href="{task_url}" class="salvador-last-task">{task.id.hex[:8]}</a>' in last
    assert '<span class="salvador-badge salvador-completed">Completed</span>' in last
    assert 'alt="False"' in cell(html, "paused", row)
    assert 'alt="True"' in cell(html, "active", row)


def test_a_pruned_last_task_is_shown_deleted(backend, admin_client):
    task = TaskFactory(completed=True)
    row = make(backend, last_run_at=timezone.now(), last_task_id=task.pk)
    Task.objects.using(backend).filter(pk=task.pk).delete()  # purgeworkflows
    html = admin_client.get(LIST_URL).content.decode()
    assert f"task {task.id.hex[:8]} deleted" in cell(html, "last_run", row)
    page = admin_client.get(change_url(row))
    assert page.status_code == 200
    assert f"task {task.id.hex[:8]} deleted" in page.content.decode()


def test_a_row_this_host_cannot_read_still_lists(backend, admin_client):
    row = make(backend, timezone="Mars/Olympus_Mons", next_run_at=timezone.now())
    html = admin_client.get(LIST_URL).content.decode()
    assert "0 3 * * *" in cell(html, "expression_", row)
    assert "not valid here" in cell(html, "expression_", row)


def test_the_list_reads_the_last_tasks_without_a_query_per_schedule(
    backend, admin_client, django_assert_max_num_queries
):
    make(backend, "first", last_run_at=timezone.now(), last_task_id=TaskFactory().pk)
    admin_client.get(LIST_URL)  # what the first page caches (the content type)
    with django_assert_max_num_queries(5, connection=connections[backend]) as one:
        admin_client.get(LIST_URL)
    for number in range(30):
        task = TaskFactory(failed=number % 2 == 0)
        make(backend, f"s{number:02}", last_run_at=timezone.now(), last_task_id=task.pk)
    with django_assert_max_num_queries(len(one), connection=connections[backend]):
        html = admin_client.get(LIST_URL).content.decode()
    assert html.count('class="salvador-last-task"') == 31


def test_the_list_filters_paused_removed_and_by_workflow_and_searches_names(backend, admin_client):
    paused = make(backend, "paused-one", paused=True)
    removed = make(backend, "removed-one", active=False)
    other = make(backend, "other-one")
    Schedule.objects.using(backend).filter(pk=other.pk).update(workflow="elsewhere")

    def listed(**query: str) -> set[str]:
        html = admin_client.get(LIST_URL, query).content.decode()
        return set(re.findall(r'<th class="field-name"><a href="[^"]+">([^<]+)</a>', html))

    assert listed() == {"paused-one", "removed-one", "other-one"}
    assert listed(paused__exact="1") == {"paused-one"}
    assert listed(active__exact="0") == {"removed-one"}
    assert listed(workflow="elsewhere") == {"other-one"}
    assert listed(q="removed") == {"removed-one"}
    assert listed(q="elsewhere") == {"other-one"}
    html = admin_client.get(LIST_URL).content.decode()
    assert "it no longer runs" in cell(html, "next_run", removed)
    assert "paused" in cell(html, "next_run", paused)


# -- a schedule's page ------------------------------------------------------------------


def test_the_page_is_read_only_and_lists_the_next_five_runs_in_its_zone(backend, admin_client):
    row = make(backend, cron="30 2 * * *", body={"kind": "nightly"})
    html = admin_client.get(change_url(row)).content.decode()
    assert 'name="workflow"' not in html
    assert 'name="cron"' not in html
    assert 'name="_save"' not in html
    upcoming = html[html.index('<ol class="salvador-upcoming">') :]
    upcoming = upcoming[: upcoming.index("</ol>")]
    times = re.findall(r">(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+) \(Europe/Paris\)<", upcoming)
    assert len(times) == 5
    assert all(" 02:30:00 " in t or " 03:00:00 " in t for t in times)  # 03:00: spring forward
    assert "&quot;kind&quot;: &quot;nightly&quot;" in html
    assert "does not run the ticks missed while the schedule was paused" in html
    post = admin_client.post(change_url(row), {"workflow": "other"})
    assert post.status_code == 403
    assert reloaded(backend, row).workflow == "three-steps"


def test_no_schedule_can_be_added(backend, admin_client):
    assert admin_client.get(f"{LIST_URL}add/").status_code == 403


def test_only_a_schedule_no_longer_declared_can_be_deleted(backend, admin_client):
    declared, removed = make(backend, "declared"), make(backend, "removed", active=False)
    delete = "admin:salvador_schedule_delete"
    assert admin_client.get(reverse(delete, args=[declared.pk])).status_code == 403
    assert admin_client.get(reverse(delete, args=[removed.pk])).status_code == 200
    assert "deletelink" not in admin_client.get(change_url(declared)).content.decode()
    assert "deletelink" in admin_client.get(change_url(removed)).content.decode()
    message = act(admin_client, "delete_selected", [declared])
    assert message == "1 skipped: still declared in code"
    confirm = admin_client.post(
        LIST_URL, {"action": "delete_selected", "_selected_action": [declared.pk, removed.pk]}
    ).content.decode()
    assert "Are you sure" in confirm
    form = confirm[confirm.index('<form method="post">') :]
    form = form[: form.index("</form>")]
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
    assert ("_selected_action", str(removed.pk)) in fields
    assert ("_selected_action", str(declared.pk)) not in fields
    data: dict[str, list[str]] = {}
    for name, value in fields:  # the confirmation form, posted as the browser would
        data.setdefault(name, []).append(value)
    admin_client.post(LIST_URL, data)
    assert list(Schedule.objects.using(backend).values_list("name", flat=True)) == ["declared"]


# -- pause, resume, run now -------------------------------------------------------------


def test_pause_and_resume_are_conditional_and_written_to_history(backend):
    client = staff("pause_schedule")
    row = make(backend)
    assert act(client, "pause_action", [row]) == "1 paused"
    assert reloaded(backend, row).paused is True
    assert act(client, "pause_action", [row]) == "0 paused, 1 skipped: already paused"
    assert act(client, "resume_action", [row]) == "1 resumed"
    assert act(client, "resume_action", [row]) == "0 resumed, 1 skipped: not paused"
    assert reloaded(backend, row).paused is False
    assert history(row) == ["Pause", "Resume"]


def test_resume_skips_the_ticks_missed_while_paused(backend):
    client = staff("pause_schedule")
    missed = make(backend, "missed", paused=True, next_run_at=datetime(2026, 1, 1, 2, tzinfo=UTC))
    future = datetime(2099, 1, 1, 2, tzinfo=UTC)
    ahead = make(backend, "ahead", paused=True, next_run_at=future)
    before = timezone.now()
    assert act(client, "resume_action", [missed, ahead]) == "2 resumed"
    resumed = reloaded(backend, missed).next_run_at
    assert before < resumed <= before + timedelta(days=1, hours=1)
    assert resumed.astimezone(PARIS).hour == 3  # its next tick, not the missed one
    assert reloaded(backend, ahead).next_run_at == future


def test_run_now_submits_one_task_links_it_and_writes_history(backend):
    client = staff("run_schedule")
    row = make(backend, body={"kind": "by hand"}, paused=True)
    response = client.post(switch_url(row, "run"), follow=True)
    assert response.redirect_chain[-1][0] == change_url(row)
    [task] = Task.objects.using(backend).filter(workflow="three-steps")
    assert task.idempotency_key.startswith("schedule:nightly:now:")
    assert task.body == {"kind": "by hand"}
    task_url = reverse("admin:salvador_task_change", args=[task.pk])
    message = shown_messages_html(response.content.decode())
    assert message == f'1 submitted (<a href="{task_url}">three-steps {task.id.hex[:8]}</a>)'
    assert reloaded(backend, row).last_task_id == task.pk
    assert history(row) == [f"Run now: task {task.id}"]


def test_run_now_skips_a_schedule_no_longer_declared(backend):
    client = staff("run_schedule")
    removed = make(backend, "removed", active=False)
    assert act(client, "run_now_action", [removed]) == (
        "0 submitted, 1 skipped: no longer declared in code"
    )
    assert not Task.objects.using(backend).exists()
    assert history(removed) == []


def test_buttons_follow_the_schedule_and_the_user_s_permissions(backend, admin_client):
    row = make(backend)
    html = admin_client.get(change_url(row)).content.decode()
    assert "salvador-triage-button salvador-pause" in html
    assert "salvador-triage-button salvador-resume" not in html
    assert "salvador-triage-button salvador-run" in html
    html = staff("pause_schedule").get(change_url(row)).content.decode()
    assert "salvador-triage-button salvador-pause" in html
    assert "salvador-triage-button salvador-run" not in html
    admin_client.post(switch_url(row, "pause"))
    html = admin_client.get(change_url(row)).content.decode()
    assert "salvador-triage-button salvador-resume" in html
    assert "salvador-triage-button salvador-pause" not in html


def test_a_user_without_the_permission_sees_no_action_and_gets_403(backend):
    row = make(backend)
    viewer = staff()
    html = viewer.get(LIST_URL).content.decode()
    for action in ("pause_action", "resume_action", "run_now_action", "delete_selected"):
        assert f'value="{action}"' not in html
    page = viewer.get(change_url(row)).content.decode()
    assert "salvador-triage-button" not in page
    for operation in ("pause", "resume", "run"):
        assert viewer.post(switch_url(row, operation)).status_code == 403
        assert viewer.post(switch_url(999_999, operation)).status_code == 403  # no id leaks
    pauser = staff("pause_schedule")
    assert pauser.post(switch_url(row, "run")).status_code == 403
    assert pauser.get(switch_url(row, "pause")).status_code == 405
    act(viewer, "pause_action", [row])  # an action the user lacks is ignored
    assert reloaded(backend, row).paused is False
    assert not Task.objects.using(backend).exists()
    assert history(row) == []


def test_the_overview_links_the_schedules(backend, admin_client):
    html = admin_client.get("/admin/salvador/overview/").content.decode()
    assert f'href="{LIST_URL}" class="salvador-schedules-link"' in html
    index = admin_client.get("/admin/salvador/").content.decode()
    assert f'href="{LIST_URL}"' in index


def test_a_failed_last_task_shows_its_status(backend, admin_client):
    task = TaskFactory(failed=True)
    row = make(backend, last_run_at=timezone.now(), last_task_id=task.pk)
    html = admin_client.get(change_url(row)).content.decode()
    assert f'class="salvador-badge salvador-{TaskStatus.FAILED}">Failed</span>' in html
    assert shown_messages(html) == ""
