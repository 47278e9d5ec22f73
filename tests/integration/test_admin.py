"""The admin, through Django's test client: list, detail, actions, permissions, overview."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from salvador_django import submit
from salvador_django.admin.pagination import CappedCountPaginator
from salvador_django.conf import get_settings
from salvador_django.exceptions import QueueUnavailable
from salvador_django.models import StepRun, Task
from salvador_django.queues import get_queue
from salvador_django.status import TaskStatus
from salvador_django.testing import run_until_idle
from tests.factories import StepRunFactory, TaskFactory, failed_after_retries
from tests.support.waiting import run_in_threads

LIST_URL = "/admin/salvador/task/"
OVERVIEW_URL = "/admin/salvador/overview/"


def change_url(task: Task) -> str:
    return reverse("admin:salvador_task_change", args=[task.pk])


def triage_url(task: Task, operation: str) -> str:
    return reverse("admin:salvador_task_triage", args=[task.pk, operation])


def from_step_url(task: Task) -> str:
    return reverse("admin:salvador_task_requeue_from_step", args=[task.pk])


def staff_client(*permissions: str) -> Client:
    user = User.objects.create_user(f"staff-{'-'.join(permissions) or 'none'}", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def act(client: Client, action: str, tasks: list[Task]) -> str:
    """Run a list action on ``tasks``; returns the message the admin showed."""
    response = client.post(
        LIST_URL,
        {"action": action, "_selected_action": [str(t.pk) for t in tasks]},
        follow=True,
    )
    assert response.status_code == 200
    return shown_messages(response.content.decode())


def shown_messages(html: str) -> str:
    """The messages on a page (read from the HTML: test-client contexts mix across threads)."""
    return " | ".join(re.findall(r'<li class="(?:success|warning|error|info)">([^<]*)</li>', html))


def status_of(task: Task) -> str:
    return Task.objects.using(get_settings().DATABASE).get(pk=task.pk).status


def failed_with_history(**fields) -> Task:
    """A task whose second step failed twice after the first completed."""
    return failed_after_retries(2, **fields)


# -- the list ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_list_shows_id_status_progress_attempt_age_and_error(admin_client):
    failed = failed_with_history()
    done = TaskFactory(completed=True)
    html = admin_client.get(LIST_URL).content.decode()
    assert failed.id.hex[:8] in html
    assert done.id.hex[:8] in html
    assert 'class="salvador-badge salvador-failed"' in html
    assert "1/3 · second" in html
    assert "3/3" in html
    assert "ValueError: second failed on purpose" in html


@pytest.mark.django_db
def test_the_list_shows_the_first_line_of_a_long_error_only(admin_client):
    TaskFactory(failed=True, error="KeyError: 'sku'\n" + "detail " * 100)
    html = admin_client.get(LIST_URL).content.decode()
    assert "KeyError: &#x27;sku&#x27;</span>" in html


@pytest.mark.django_db
def test_the_list_is_newest_first(admin_client):
    old = TaskFactory(created_at=timezone.now() - timedelta(days=2))
    new = TaskFactory()
    html = admin_client.get(LIST_URL).content.decode()
    assert html.index(new.id.hex[:8]) < html.index(old.id.hex[:8])


@pytest.mark.django_db
def test_the_failed_quick_filter_is_on_top_and_lists_failed_tasks_only(admin_client):
    failed, pending = TaskFactory(failed=True), TaskFactory()
    html = admin_client.get(LIST_URL).content.decode()
    assert html.index("salvador-quick-filter salvador-failed") < html.index('id="result_list"')
    filtered = admin_client.get(LIST_URL, {"status__exact": "failed"}).content.decode()
    assert failed.id.hex[:8] in filtered
    assert pending.id.hex[:8] not in filtered
    assert "salvador-quick-filter salvador-failed active" in filtered


@pytest.mark.django_db
def test_filters_by_workflow_and_created_date(admin_client):
    mine = TaskFactory(workflow="breaks-second")
    other = TaskFactory()
    old = TaskFactory(workflow="breaks-second", created_at=timezone.now() - timedelta(days=30))
    html = admin_client.get(LIST_URL, {"workflow": "breaks-second"}).content.decode()
    assert mine.id.hex[:8] in html
    assert old.id.hex[:8] in html
    assert other.id.hex[:8] not in html
    since = (timezone.now() - timedelta(days=7)).isoformat()
    html = admin_client.get(LIST_URL, {"created_at__gte": since}).content.decode()
    assert mine.id.hex[:8] in html
    assert other.id.hex[:8] in html
    assert old.id.hex[:8] not in html


@pytest.mark.django_db
def test_the_workflow_filter_offers_registered_workflows_without_a_query(admin_client):
    html = admin_client.get(LIST_URL).content.decode()
    for name in ("three-steps", "breaks-second", "flaky"):
        assert f"?workflow={name}" in html


@pytest.mark.django_db
def test_the_list_shows_the_step_a_task_failed_at(admin_client):
    TaskFactory(failed=True, failed_step="second")
    html = admin_client.get(LIST_URL).content.decode()
    assert '<th scope="col" class="column-failed_step_">' in html
    assert '<td class="field-failed_step_">second</td>' in html


@pytest.mark.django_db
def test_the_failed_step_filter_offers_the_registered_steps_without_a_query(
    admin_client, django_assert_max_num_queries
):
    with django_assert_max_num_queries(6) as captured:
        html = admin_client.get(LIST_URL).content.decode()
    assert "DISTINCT" not in " ".join(q["sql"] for q in captured.captured_queries).upper()
    for step in ("first", "second", "third", "unreliable", "charge"):
        assert f"?failed_step={step}" in html
    assert html.count("?failed_step=first") == 1  # a step of two workflows is offered once
    flaky = admin_client.get(LIST_URL, {"workflow": "flaky"}).content.decode()
    assert "failed_step=unreliable" in flaky
    assert "failed_step=first" not in flaky  # only the chosen workflow's steps


@pytest.mark.django_db
def test_the_failed_step_filter_lists_the_tasks_that_broke_there(admin_client):
    second = TaskFactory(failed=True, failed_step="second")
    third = TaskFactory(failed=True, failed_step="third", step=2, step_name="third")
    html = admin_client.get(LIST_URL, {"failed_step": "second"}).content.decode()
    assert second.id.hex[:8] in html
    assert third.id.hex[:8] not in html


@pytest.mark.admin_db
def test_a_compensated_task_still_says_which_step_failed(backend, admin_client):
    task = submit("saga", {"fail": ["ship"]})
    run_until_idle()
    task.refresh_from_db()
    assert (task.step_name, task.failed_step) == ("", "ship")
    html = admin_client.get(LIST_URL, {"failed_step": "ship"}).content.decode()
    assert task.id.hex[:8] in html
    assert '<td class="field-failed_step_">ship</td>' in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("{id}", True),
        ("{short}", True),
        ("order-42", True),
        ("card declined", True),
        ("CARD DECLINED", True),
        ("c-7", False),  # meta is searched as key=value
        ("customer=c-7", True),
        ("customer=c-8", False),
        ("nothing like it", False),
    ],
)
def test_search_by_id_idempotency_key_error_and_meta(admin_client, term, found):
    task = TaskFactory(
        failed=True,
        idempotency_key="order-42",
        error="PaymentError: card declined",
        meta={"customer": "c-7"},
    )
    bystander = TaskFactory(meta={"customer": "c-9"})
    query = term.format(id=task.id, short=task.id.hex[:8])
    html = admin_client.get(LIST_URL, {"q": query}).content.decode()
    assert (task.id.hex[:8] in html) is found
    assert bystander.id.hex[:8] not in html


@pytest.mark.django_db
def test_the_count_stops_at_the_cap(admin_client, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 5)
    TaskFactory.create_batch(8)
    html = admin_client.get(LIST_URL).content.decode()
    assert "More than 5 tasks" in html
    TaskFactory.create_batch(2, failed=True)
    html = admin_client.get(LIST_URL, {"status__exact": "failed"}).content.decode()
    assert "2 tasks" in html
    assert "More than" not in html


@pytest.mark.django_db
def test_the_list_costs_the_same_queries_for_5_or_60_tasks(
    admin_client, django_assert_max_num_queries
):
    def queries_for_list() -> int:
        with django_assert_max_num_queries(6) as captured:
            response = admin_client.get(LIST_URL, {"status__exact": "failed"})
        assert response.status_code == 200
        sql = " ".join(q["sql"] for q in captured.captured_queries).upper()
        assert "COUNT(*)" not in sql.replace("SELECT COUNT(*) FROM (SELECT", "")
        return len(captured)

    TaskFactory.create_batch(5, failed=True)
    few = queries_for_list()
    TaskFactory.create_batch(55, failed=True)
    assert queries_for_list() == few


@pytest.mark.django_db
def test_the_list_does_not_read_bodies(admin_client, django_assert_max_num_queries):
    TaskFactory(body={"big": "x" * 1000})
    with django_assert_max_num_queries(6) as captured:
        admin_client.get(LIST_URL)
    listing = [q["sql"] for q in captured.captured_queries if "ORDER BY" in q["sql"]]
    assert listing
    assert all('"body"' not in sql for sql in listing)


# -- the detail page --------------------------------------------------------------------


@pytest.mark.django_db
def test_detail_shows_json_step_runs_tracebacks_and_a_timeline(admin_client):
    task = failed_with_history(body={"order": 7, "items": ["a"]}, meta={"customer": "c-7"})
    response = admin_client.get(change_url(task))
    assert response.status_code == 200
    html = response.content.decode()
    assert "&quot;items&quot;: [\n    &quot;a&quot;\n  ]" in html  # pretty-printed body
    assert "&quot;customer&quot;: &quot;c-7&quot;" in html
    assert html.count('<details class="salvador-traceback">') == 2
    assert "failed on purpose (attempt 2)" in html
    timeline = html.index('<svg class="salvador-timeline"')
    svg = html[timeline : html.index("</svg>", timeline)]
    assert svg.count('class="salvador-bar salvador-completed"') == 1
    assert svg.count('class="salvador-bar salvador-failed"') == 2
    assert "2 · second" in svg
    assert 'class="salvador-timeline-row failed"' in svg


@pytest.mark.django_db
def test_timeline_bars_are_placed_in_time_order(admin_client):
    task = failed_with_history()
    html = admin_client.get(change_url(task)).content.decode()
    xs = [float(x) for x in re.findall(r'<rect class="salvador-bar [^"]+" x="([\d.]+)"', html)]
    assert xs == sorted(xs)
    assert xs[0] == 200.0  # the first attempt starts at the axis's origin


def requeued_then_completed() -> Task:
    """A completed task whose second step failed twice, was requeued, then completed.

    The engine numbers attempts from 1 again after a requeue, and the rows are written
    out of time order, so neither the attempt number nor the id says what came first.
    """
    task = TaskFactory(completed=True)
    start = timezone.now() - timedelta(minutes=10)

    def attempt(index: int, name: str, number: int, at: float, status: str) -> None:
        begun = start + timedelta(seconds=at)
        StepRunFactory(
            task=task,
            index=index,
            name=name,
            attempt=number,
            status=status,
            started_at=begun,
            finished_at=begun + timedelta(seconds=1),
            error="ValueError: no" if status == "failed" else "",
        )

    attempt(1, "second", 1, 100.0, "completed")  # after the requeue
    attempt(0, "first", 1, 0.0, "completed")
    attempt(1, "second", 2, 20.0, "failed")
    attempt(1, "second", 1, 10.0, "failed")
    attempt(2, "third", 1, 110.0, "completed")
    return task


def step_attempt_rows(html: str) -> list[tuple[str, ...]]:
    """(run, step name, attempt, status) of each row of the step attempts table."""
    table = html[html.index('id="step_runs-group"') :]
    cells = {
        column: re.findall(rf'<td class="field-{column}">(.*?)</td>', table, re.S)
        for column in ("run_", "name_", "attempt", "status_")
    }
    text = {c: [re.sub(r"<[^>]+>", "", v).strip() for v in vs] for c, vs in cells.items()}
    return list(zip(*text.values(), strict=True))


@pytest.mark.django_db
def test_step_attempts_read_in_the_order_they_happened_with_their_run(admin_client):
    task = requeued_then_completed()
    html = admin_client.get(change_url(task)).content.decode()
    assert step_attempt_rows(html) == [
        ("1", "first", "1", "Completed"),
        ("1", "second", "1", "Failed"),
        ("1", "second", "2", "Failed"),
        ("2", "second", "1", "Completed"),
        ("2", "third", "1", "Completed"),
    ]


@pytest.mark.django_db
def test_a_step_that_completed_after_a_requeue_is_not_red_on_the_timeline(admin_client):
    task = requeued_then_completed()
    html = admin_client.get(change_url(task)).content.decode()
    svg = html[html.index('<svg class="salvador-timeline"') :]
    assert "salvador-timeline-row failed" not in svg


@pytest.mark.django_db
def test_every_time_on_the_task_page_shows_seconds(admin_client):
    moment = timezone.now().replace(hour=9, minute=8, second=7, microsecond=0)
    task = failed_with_history(created_at=moment, run_after=moment, started_at=moment)
    StepRun.objects.filter(task=task).update(next_attempt_at=moment)
    admin_client.post(triage_url(task, "requeue"))
    html = admin_client.get(change_url(task)).content.decode()
    times = html[html.index("field-created_at") : html.index("field-idempotency_key")]
    assert times.count("09:08:07 UTC</span>") == 2  # created, started (a requeue made it due now)
    steps = html[html.index('id="step_runs-group"') :]
    assert steps.count("09:08:07 UTC</span>") == 3  # each attempt's next attempt
    assert re.search(r"\d\d:\d\d:\d\d", steps[: steps.index("field-duration_")])
    assert ">None<" not in html  # a time not set shows the admin's dash
    history = html[html.index('class="salvador-history"') :]
    assert re.search(r"<span>[-\d]+</span> <span>\d\d:\d\d:\d\d UTC</span></time> · admin", history)


@pytest.mark.django_db
def test_detail_without_step_runs_says_so(admin_client):
    task = TaskFactory()
    html = admin_client.get(change_url(task)).content.decode()
    assert "No step has run yet." in html


@pytest.mark.django_db
def test_detail_costs_a_bounded_number_of_queries(admin_client, django_assert_max_num_queries):
    task = failed_with_history()
    with django_assert_max_num_queries(10):
        assert admin_client.get(change_url(task)).status_code == 200


@pytest.mark.django_db
def test_detail_lists_who_requeued_the_task(admin_client):
    task = failed_with_history()
    admin_client.post(triage_url(task, "requeue"))
    html = admin_client.get(change_url(task)).content.decode()
    history = html[html.index('class="salvador-history"') :]
    assert "admin · Requeue from the failed step" in history


@pytest.mark.django_db
def test_detail_offers_only_the_operations_its_status_allows(admin_client):
    failed = admin_client.get(change_url(TaskFactory(failed=True))).content.decode()
    assert "/triage/requeue/" in failed
    assert "/triage/cancel/" in failed
    running = admin_client.get(change_url(TaskFactory(running=True))).content.decode()
    assert "/triage/cancel/" in running  # a request: it stops after its current step
    assert "/triage/requeue/" not in running
    completed = admin_client.get(change_url(TaskFactory(completed=True))).content.decode()
    assert "/triage/restart/" in completed
    assert "/triage/requeue/" not in completed


# -- actions ----------------------------------------------------------------------------


@pytest.mark.admin_db
def test_requeue_reports_each_task_and_logs_it(backend, admin_client):
    failed = [failed_with_history(workflow="breaks-second") for _ in range(2)]
    cancelled = TaskFactory(cancelled=True)
    running = TaskFactory(running=True)
    message = act(admin_client, "requeue_action", [*failed, cancelled, running])
    assert message == "3 requeued, 1 skipped: already running"
    assert [status_of(t) for t in failed] == ["pending", "pending"]
    assert status_of(running) == "running"
    logged = LogEntry.objects.filter(change_message="Requeue from the failed step")
    assert {e.object_id for e in logged} == {str(t.pk) for t in [*failed, cancelled]}
    run_until_idle()
    for task in failed:
        task.refresh_from_db()
        assert (task.status, task.step) == ("failed", 1)  # it broke again, at the same step
        assert task.step_runs.filter(index=0).count() == 1  # the first step did not rerun


@pytest.mark.admin_db
def test_restart_runs_a_task_from_its_first_step(backend, admin_client):
    task = TaskFactory(completed=True, state={"first": 1})
    assert act(admin_client, "restart_action", [task]) == "1 restarted"
    task.refresh_from_db()
    assert (task.status, task.step, task.step_name, task.state) == ("pending", 0, "first", {})
    run_until_idle()
    task.refresh_from_db()
    assert task.status == "completed"


@pytest.mark.admin_db
def test_cancel_skips_running_and_completed_tasks(backend, admin_client):
    pending, failed = TaskFactory(), TaskFactory(failed=True)
    running, done = TaskFactory(running=True), TaskFactory(completed=True)
    message = act(admin_client, "cancel_action", [pending, failed, running, done])
    assert message == (
        "2 cancelled, 1 cancel requested (stops after its current step), "
        "1 skipped: already completed"
    )
    assert [status_of(t) for t in (pending, failed, running, done)] == [
        "cancelled",
        "cancelled",
        "running",
        "completed",
    ]
    running.refresh_from_db()
    assert running.cancel_requested
    html = admin_client.get(LIST_URL).content.decode()
    assert '<span class="salvador-note">cancel requested</span>' in html


@pytest.mark.admin_db
def test_two_operators_requeueing_one_task_requeue_it_once(backend, admin_client):
    task = TaskFactory(failed=True)
    other = User.objects.create_superuser("other")
    clients = [admin_client, Client()]
    clients[1].force_login(other)
    messages = run_in_threads(lambda i: act(clients[i], "requeue_action", [task]), 2)
    assert sorted(messages) == ["0 requeued, 1 skipped: already pending", "1 requeued"]
    assert LogEntry.objects.filter(object_id=str(task.pk)).count() == 1


@pytest.mark.django_db
def test_a_detail_button_requeues_and_comes_back_to_the_task(admin_client):
    task = TaskFactory(failed=True)
    response = admin_client.post(triage_url(task, "requeue"), follow=True)
    assert response.redirect_chain[-1][0] == change_url(task)
    assert [str(m) for m in response.context["messages"]] == ["1 requeued"]
    assert status_of(task) == "pending"


@pytest.mark.django_db
def test_a_detail_button_on_a_task_that_moved_meanwhile_says_so(admin_client):
    task = TaskFactory(failed=True)
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    response = admin_client.post(triage_url(task, "requeue"), follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "0 requeued, 1 skipped: already running"
    ]


@pytest.mark.django_db
def test_triage_urls_refuse_get_unknown_operations_and_unknown_tasks(admin_client):
    task = TaskFactory(failed=True)
    assert admin_client.get(triage_url(task, "requeue")).status_code == 405
    assert admin_client.post(triage_url(task, "explode")).status_code == 404
    missing = reverse("admin:salvador_task_triage", args=["0" * 32, "requeue"])
    assert admin_client.post(missing).status_code == 404
    assert status_of(task) == "failed"


def completed_three_steps() -> Task:
    """A three-steps task run to completion, each step's state checkpointed."""
    task = submit("three-steps", {})
    run_until_idle()
    task.refresh_from_db()
    assert task.status == "completed"
    return task


def requeue_form(html: str) -> str:
    start = html.find('class="salvador-requeue-from-step"')
    return "" if start < 0 else html[start : html.index("</form>", start)]


@pytest.mark.django_db
def test_a_finished_task_page_offers_its_steps_to_requeue_from(admin_client):
    failed = TaskFactory(failed=True, failed_step="second")
    form = requeue_form(admin_client.get(change_url(failed)).content.decode())
    assert 'name="csrfmiddlewaretoken"' in form
    assert re.findall(r'<option value="([^"]+)"', form) == ["first", "second", "third"]
    assert '<option value="second" selected>' in form  # where it broke
    assert "Requeue from this step" in form
    for other in (
        TaskFactory(running=True),
        TaskFactory(),  # pending
        TaskFactory(completed=True, workflow="no-longer-registered"),
    ):
        assert requeue_form(admin_client.get(change_url(other)).content.decode()) == ""


@pytest.mark.django_db
def test_requeue_from_a_step_needs_the_requeue_permission_and_a_post():
    task = TaskFactory(completed=True)
    viewer = staff_client("view_task")
    assert requeue_form(viewer.get(change_url(task)).content.decode()) == ""
    assert viewer.post(from_step_url(task), {"step": "second"}).status_code == 403
    requeuer = staff_client("view_task", "requeue_task")
    assert requeue_form(requeuer.get(change_url(task)).content.decode())
    assert requeuer.get(from_step_url(task), {"step": "second"}).status_code == 405
    assert status_of(task) == "completed"
    assert not LogEntry.objects.exists()


@pytest.mark.admin_db
def test_requeue_from_a_step_runs_the_task_again_from_that_step(backend, admin_client):
    task = completed_three_steps()
    response = admin_client.post(from_step_url(task), {"step": "second"}, follow=True)
    assert response.redirect_chain[-1][0] == change_url(task)
    assert shown_messages(response.content.decode()) == "Requeued from step second"
    task.refresh_from_db()
    assert (task.status, task.step, task.step_name) == ("pending", 1, "second")
    assert task.state == {"first": 1}  # as it was after the step before it
    history = LogEntry.objects.get(object_id=str(task.pk))
    assert history.get_change_message() == "Requeue from step second"
    run_until_idle()
    task.refresh_from_db()
    assert task.status == "completed"
    assert task.step_runs.filter(name="first").count() == 1  # not run again
    assert task.step_runs.filter(name="second").count() == 2


@pytest.mark.django_db
def test_requeue_from_a_step_of_a_running_task_is_refused_with_a_message(admin_client):
    task = TaskFactory(running=True)
    response = admin_client.post(from_step_url(task), {"step": "first"}, follow=True)
    assert response.status_code == 200
    assert "running" in shown_messages(response.content.decode())
    assert '<li class="error">' in response.content.decode()
    assert status_of(task) == "running"
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_requeue_from_an_unknown_step_names_the_steps(admin_client):
    task = TaskFactory(failed=True)
    response = admin_client.post(from_step_url(task), {"step": "explode"}, follow=True)
    message = shown_messages(response.content.decode())
    assert "explode" in message
    assert "first, second, third" in message
    assert status_of(task) == "failed"
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_requeue_from_a_step_of_an_unknown_task_is_404(admin_client):
    missing = reverse("admin:salvador_task_requeue_from_step", args=["0" * 32])
    assert admin_client.post(missing, {"step": "first"}).status_code == 404


# -- permissions ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_viewer_sees_tasks_but_no_action_or_button():
    client = staff_client("view_task")
    task = TaskFactory(failed=True)
    html = client.get(LIST_URL).content.decode()
    assert task.id.hex[:8] in html
    for action in ("requeue_action", "restart_action", "cancel_action", "delete_selected"):
        assert action not in html
    assert "/triage/" not in client.get(change_url(task)).content.decode()


@pytest.mark.django_db
def test_a_viewer_cannot_post_actions_or_buttons():
    client = staff_client("view_task")
    task = TaskFactory(failed=True)
    act(client, "requeue_action", [task])
    act(client, "cancel_action", [task])
    assert client.post(triage_url(task, "requeue")).status_code == 403
    assert client.post(triage_url(task, "cancel")).status_code == 403
    assert status_of(task) == "failed"
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_requeue_and_cancel_permissions_are_separate():
    client = staff_client("view_task", "requeue_task")
    html = client.get(LIST_URL).content.decode()
    assert "requeue_action" in html
    assert "restart_action" in html
    assert "cancel_action" not in html
    task = TaskFactory(failed=True)
    assert client.post(triage_url(task, "cancel")).status_code == 403
    assert client.post(triage_url(task, "requeue")).status_code == 302
    assert status_of(task) == "pending"


@pytest.mark.django_db
def test_tasks_cannot_be_added_or_edited_and_only_superusers_delete(admin_client):
    task = TaskFactory(failed=True)
    everything = staff_client(
        "view_task", "add_task", "change_task", "delete_task", "requeue_task", "cancel_task"
    )
    assert everything.get("/admin/salvador/task/add/").status_code == 403
    html = everything.get(change_url(task)).content.decode()
    assert 'name="_save"' not in html
    assert "delete_selected" not in everything.get(LIST_URL).content.decode()
    assert everything.post(reverse("admin:salvador_task_delete", args=[task.pk])).status_code == 403
    assert "delete_selected" in admin_client.get(LIST_URL).content.decode()
    response = admin_client.post(
        reverse("admin:salvador_task_delete", args=[task.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Task.objects.filter(pk=task.pk).exists()


@pytest.mark.django_db
def test_step_runs_cannot_be_edited_inline(admin_client):
    task = failed_with_history()
    html = admin_client.get(change_url(task)).content.decode()
    assert 'name="step_runs-0-name"' not in html
    assert 'name="step_runs-MAX_NUM_FORMS" value="0"' in html  # no row can be added


# -- overview ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_overview_counts_per_workflow_and_status_and_links_to_the_list(admin_client):
    TaskFactory.create_batch(3, failed=True)
    TaskFactory.create_batch(2, completed=True)
    TaskFactory(
        workflow="breaks-second", failed=True, finished_at=timezone.now() - timedelta(days=3)
    )
    TaskFactory(run_after=timezone.now() - timedelta(minutes=5))
    response = admin_client.get(OVERVIEW_URL)
    assert response.status_code == 200
    rows = {item.name: item for item, _cells in response.context["rows"]}
    three = rows["three-steps"]
    assert {s: c.count for s, c in three.counts.items()} == {
        "failed": 3,
        "completed": 2,
        "pending": 1,
    }
    assert three.failed_recently is not None
    assert three.failed_recently.count == 3
    assert rows["breaks-second"].failed_recently is None  # failed three days ago
    assert three.waiting.startswith("5 min")
    assert rows["flaky"].counts == {}  # registered, no task yet
    html = response.content.decode()
    assert 'href="/admin/salvador/task/?workflow=three-steps&amp;status__exact=failed">3<' in html


@pytest.mark.django_db
def test_the_overview_breaks_recent_failures_down_by_failed_step(admin_client):
    TaskFactory.create_batch(2, failed=True, failed_step="second")
    TaskFactory(failed=True, failed_step="third")
    TaskFactory(failed=True, failed_step="")  # failed before failed_step was recorded
    response = admin_client.get(OVERVIEW_URL)
    rows = {item.name: item for item, _cells in response.context["rows"]}
    three = rows["three-steps"]
    assert three.failed_recently is not None
    assert three.failed_recently.count == 4
    by_step = [(cell.label, cell.count) for cell in three.failed_steps]
    assert by_step == [("second", 2), ("third", 1)]
    html = response.content.decode()
    assert (
        'href="/admin/salvador/task/?workflow=three-steps&amp;failed_step=second'
        '&amp;status__exact=failed" title="failed at this step">second 2</a>'
    ) in html


@pytest.mark.django_db
def test_the_overview_counts_completed_tasks_up_to_the_cap(admin_client, monkeypatch):
    monkeypatch.setattr("salvador_django.admin.overview.COUNT_CAP", 3)
    TaskFactory.create_batch(5, completed=True)
    TaskFactory.create_batch(4, failed=True)
    response = admin_client.get(OVERVIEW_URL)
    rows = {item.name: item for item, _cells in response.context["rows"]}
    completed = rows["three-steps"].counts["completed"]
    assert (completed.count, completed.capped) == (3, True)
    assert rows["three-steps"].counts["failed"].count == 4  # failures are counted exactly
    assert 'status__exact=completed">&gt; 3<' in response.content.decode()


@pytest.mark.django_db
def test_the_overview_is_linked_from_the_app_index_and_the_list(admin_client):
    assert OVERVIEW_URL in admin_client.get("/admin/salvador/").content.decode()
    assert OVERVIEW_URL in admin_client.get("/admin/").content.decode()
    assert OVERVIEW_URL in admin_client.get(LIST_URL).content.decode()


@pytest.mark.django_db
def test_the_overview_needs_the_view_permission():
    assert staff_client().get(OVERVIEW_URL).status_code == 403
    assert staff_client("view_task").get(OVERVIEW_URL).status_code == 200


@pytest.mark.redis
@pytest.mark.admin_db
@pytest.mark.only_backend("sqlite")
@pytest.mark.only_queue("redis")
def test_the_overview_shows_the_redis_queue_depth(backend, queue_name, admin_client):
    from salvador_django import submit

    submit("three-steps", {})
    submit("three-steps", {}, delay=3600)
    response = admin_client.get(OVERVIEW_URL)
    rows = {item.name: item for item, _cells in response.context["rows"]}
    assert rows["three-steps"].depth == get_queue().depth("three-steps")
    assert rows["three-steps"].depth["delayed"] == 1
    assert "queue depth" in response.content.decode()


@pytest.mark.django_db
def test_the_database_queue_shows_no_depth_column(admin_client):
    TaskFactory()
    assert "queue depth" not in admin_client.get(OVERVIEW_URL).content.decode()


@pytest.mark.django_db
def test_a_compensated_task_shows_its_compensations(admin_client):
    task = submit("saga", {"fail": ["ship"]})
    run_until_idle()
    html = admin_client.get(LIST_URL).content.decode()
    assert '<span class="salvador-note">Compensated</span>' in html
    page = admin_client.get(change_url(task)).content.decode()
    assert "↩ charge (compensation)" in page
    timeline = page[page.index('<svg class="salvador-timeline"') :]
    assert timeline.count('class="salvador-bar salvador-compensation"') == 2
    assert "↩ 2 · charge" in timeline


# -- hostile and odd input (issue 23) ---------------------------------------------------


@pytest.mark.admin_db
@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("in=y", True),  # a key that is also a lookup's name
        ("contains=x", True),
        ("isnull=1", False),
        ("regex=(", False),
        ("exact=", False),
        ("0=zero", True),  # a key of digits is a key, not an array index
        ("a.b=dotted", True),  # a dot is part of the key, not a path
        ("customer__in=c-7", False),  # no lookup hides in a key
        ("customer=c-7", True),
        ("customer=C-7", False),
    ],
)
def test_a_meta_search_takes_the_key_as_a_key(backend, admin_client, term, found):
    task = TaskFactory(
        meta={"in": "y", "contains": "x", "0": "zero", "a.b": "dotted", "customer": "c-7"}
    )
    bystander = TaskFactory(meta={"customer": "c-9"})
    response = admin_client.get(LIST_URL, {"q": term})
    assert response.status_code == 200
    html = response.content.decode()
    assert (task.id.hex[:8] in html) is found
    assert bystander.id.hex[:8] not in html


@pytest.mark.admin_db
@pytest.mark.parametrize("term", ["x" * 60_000, "customer=" + "c" * 60_000, "x" * 501])
def test_a_search_longer_than_the_limit_is_refused_with_a_message(backend, admin_client, term):
    task = TaskFactory(failed=True, error="x" * 600, meta={"customer": "c" * 60_000})
    response = admin_client.get(LIST_URL, {"q": term})
    assert response.status_code == 200
    html = response.content.decode()
    assert shown_messages(html) == "The search is too long: at most 500 characters."
    assert task.id.hex[:8] not in html
    assert task.id.hex[:8] in admin_client.get(LIST_URL, {"q": "x" * 500}).content.decode()


@pytest.mark.admin_db
def test_restart_skips_a_task_whose_workflow_is_no_longer_registered(backend, admin_client):
    kept = TaskFactory(completed=True)
    retired = TaskFactory(completed=True, workflow="no-longer-registered")
    message = act(admin_client, "restart_action", [kept, retired])
    assert message == "1 restarted, 1 skipped: workflow not registered"
    assert (status_of(kept), status_of(retired)) == ("pending", "completed")
    assert [e.object_id for e in LogEntry.objects.all()] == [str(kept.pk)]


@pytest.mark.django_db
def test_a_retired_task_page_offers_no_restart_and_its_url_skips_it(admin_client):
    retired = TaskFactory(completed=True, workflow="no-longer-registered")
    assert "/triage/restart/" not in admin_client.get(change_url(retired)).content.decode()
    response = admin_client.post(triage_url(retired, "restart"), follow=True)
    assert shown_messages(response.content.decode()) == (
        "0 restarted, 1 skipped: workflow not registered"
    )
    assert status_of(retired) == "completed"
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "permissions",
    [("cancel_task", "requeue_task"), ("view_task",), ()],
)
def test_the_task_urls_answer_alike_for_unknown_and_forbidden_tasks(permissions):
    client = staff_client(*permissions)
    task = TaskFactory(failed=True)
    missing = Task(pk="0" * 32)
    for target in (task, missing):
        assert client.post(triage_url(target, "cancel")).status_code == 403
        assert client.post(triage_url(target, "requeue")).status_code == 403
        assert client.post(from_step_url(target), {"step": "first"}).status_code == 403
    assert status_of(task) == "failed"
    assert not LogEntry.objects.exists()


class UnreachableQueue:
    def depth(self, workflow: str) -> dict[str, int]:
        raise QueueUnavailable("Error 111 connecting to redis.internal:6390. Connection refused.")


@pytest.mark.django_db
def test_the_overview_shows_the_queue_error_to_superusers_only(admin_client, monkeypatch):
    monkeypatch.setattr("salvador_django.admin.overview.get_queue", UnreachableQueue)
    TaskFactory()
    viewer = staff_client("view_task").get(OVERVIEW_URL)
    assert viewer.status_code == 200
    html = viewer.content.decode()
    assert "redis.internal" not in html
    assert "The queue is unavailable" in html
    assert "redis.internal:6390" in admin_client.get(OVERVIEW_URL).content.decode()


HUGE = 2_000_000


@pytest.mark.django_db
def test_huge_errors_leave_the_list_small(admin_client):
    TaskFactory.create_batch(5, failed=True, error="RuntimeError: " + "x" * HUGE)
    TaskFactory(failed=True, error="KeyError: 'sku'\n" + "detail\n" * (HUGE // 7))
    html = admin_client.get(LIST_URL, {"status__exact": "failed"}).content.decode()
    assert len(html) < 60_000
    titles = [unescape(title) for title in re.findall(r'<span title="([^"]*)">', html)]
    assert len(titles) == 6
    assert all(len(title) <= 500 and title.endswith("…") for title in titles)
    assert "KeyError: &#x27;sku&#x27;</span>" in html


@pytest.mark.django_db
def test_huge_errors_and_tracebacks_are_cut_on_the_task_page(admin_client):
    error = "RuntimeError: " + "x" * HUGE
    task = TaskFactory(failed=True, error=error)
    StepRunFactory(
        task=task,
        status="failed",
        error=error,
        traceback="Traceback (most recent call last):\n" + "y" * HUGE,
    )
    html = admin_client.get(change_url(task)).content.decode()
    assert len(html) < 100_000
    assert f"… {len(error) - 10_000:,} more characters" in html
    traceback = len("Traceback (most recent call last):\n") + HUGE
    assert f"… {traceback - 10_000:,} more characters" in html


def whole_reads(queries: list[dict[str, str]], *columns: str) -> list[str]:
    """The statements that read one of ``columns`` (``"table"."column"``) whole: not
    only a part of it (``SUBSTR``) or its length."""
    parts = {c: re.compile(r"(?:SUBSTR|SUBSTRING|LENGTH)\(" + re.escape(c)) for c in columns}
    return [
        query["sql"]
        for query in queries
        if any(query["sql"].count(c) > len(parts[c].findall(query["sql"])) for c in columns)
    ]


def make_huge(rows: list[Task] | list[StepRun], **fields: object) -> None:
    """Write ``fields`` straight into ``rows``, as old rows hold them (before the engine
    bounded errors)."""
    for row in rows:
        manager = type(row)._default_manager.using(get_settings().DATABASE)
        assert manager.filter(pk=str(row.pk)).update(**fields) == 1


@pytest.mark.admin_db
def test_the_list_reads_only_the_beginning_of_each_error(backend, admin_client):
    tasks = TaskFactory.create_batch(5, failed=True)
    make_huge(tasks, error="RuntimeError: " + "x" * HUGE)
    lines = TaskFactory(failed=True)
    make_huge([lines], error="KeyError: 'sku'\n" + "detail\n" * (HUGE // 7))
    with CaptureQueriesContext(connections[backend]) as captured:
        response = admin_client.get(LIST_URL, {"status__exact": "failed"})
    assert response.status_code == 200
    assert whole_reads(captured.captured_queries, '"salvador_task"."error"') == []
    (count,) = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"]]
    assert "error" not in count  # the rows counted are not read
    html = response.content.decode()
    assert len(html) < 200_000
    cells = re.findall(r'<span title="([^"]*)">([^<]*)</span>', html)
    assert len(cells) == 6
    for title, line in cells:
        assert len(unescape(title)) <= 500
        assert unescape(title).endswith("…")
        assert len(unescape(line)) <= 100
    assert ("RuntimeError: " + "x" * 85 + "…") in [unescape(line) for _, line in cells]
    assert "KeyError: &#x27;sku&#x27;</span>" in html


@pytest.mark.admin_db
def test_the_task_page_reads_only_the_beginning_of_each_attempt_s_text(backend, admin_client):
    task = TaskFactory(failed=True)
    runs = [StepRunFactory(task=task, status="failed", attempt=n) for n in (1, 2, 3)]
    huge = {
        "error": "RuntimeError: " + "x" * HUGE,
        "traceback": "Traceback (most recent call last):\n" + "y" * HUGE,
        "output": {"big": "z" * HUGE},
        "state": {"big": "z" * HUGE},
    }
    make_huge(runs, **huge)
    with CaptureQueriesContext(connections[backend]) as captured:
        response = admin_client.get(change_url(task))
    assert response.status_code == 200
    columns = [f'"salvador_steprun"."{name}"' for name in huge]
    assert whole_reads(captured.captured_queries, *columns) == []
    html = response.content.decode()
    assert len(html) < 200_000
    assert html.count('<details class="salvador-traceback">') == 3
    cut = len(huge["traceback"]) - 10_000
    assert html.count(f"… {cut:,} more characters") == 3
    assert html.count("RuntimeError: " + "x" * 85 + "…") == 3  # each attempt's error cell
