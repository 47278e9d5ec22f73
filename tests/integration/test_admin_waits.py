"""The admin of waits: statuses, a waiting task's page, Send signal, Pause and Resume."""

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

from salvador_django import send_signal, submit
from salvador_django.conf import get_settings
from salvador_django.models import Event, Signal, Task, Wait
from salvador_django.status import TaskStatus, WaitKind, WaitOutcome
from salvador_django.testing import run_until_idle
from tests.factories import TaskFactory
from tests.integration.test_admin import (
    LIST_URL,
    OVERVIEW_URL,
    act,
    change_url,
    shown_messages,
    staff_client,
    status_of,
    triage_url,
)

HUGE = 600_000  # a payload of 600 KB (MAX_BODY_BYTES is 1 MB)


def signal_url(task: Task) -> str:
    return reverse("admin:salvador_task_signal", args=[task.pk])


def db() -> str:
    return get_settings().DATABASE


def waiting(**fields: object) -> Task:
    """A task of "approval" waiting at "decide" for the signal "approval"."""
    values = {
        "workflow": "approval",
        "status": TaskStatus.WAITING,
        "step": 1,
        "step_name": "decide",
        "waiting_for": "approval",
        **fields,
    }
    return TaskFactory(**values)


def paused(**fields: object) -> Task:
    return waiting(status=TaskStatus.PAUSED, **fields)


def reloaded(task: Task) -> Task:
    return Task.objects.using(db()).get(pk=task.pk)


def form_key(html: str) -> str:
    """The idempotency key a Send signal form carries."""
    found = re.search(r'name="idempotency_key" value="(admin:[0-9a-f]{32})"', html)
    assert found, "no idempotency key in the form"
    return found.group(1)


def post_signal(client: Client, task: Task, name: str, payload: str) -> str:
    """Open the task's Send signal form and post it; the page it led to."""
    form = client.get(signal_url(task))
    assert form.status_code == 200
    data = {"name": name, "payload": payload, "idempotency_key": form_key(form.content.decode())}
    response = client.post(signal_url(task), data, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def history_of(task: Task) -> list[str]:
    entries = LogEntry.objects.filter(object_id=str(task.pk)).order_by("action_time")
    return [entry.change_message for entry in entries]


# -- the list ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_list_filters_and_badges_waiting_and_paused_tasks(admin_client):
    asleep, stopped, other = waiting(), paused(), TaskFactory()
    html = admin_client.get(LIST_URL).content.decode()
    assert "?status__exact=waiting" in html  # the sidebar filter and the quick filter
    assert "?status__exact=paused" in html
    assert "salvador-quick-filter salvador-waiting" in html
    assert '<span class="salvador-badge salvador-waiting">Waiting</span>' in html
    assert '<span class="salvador-badge salvador-paused">Paused</span>' in html
    filtered = admin_client.get(LIST_URL, {"status__exact": "waiting"}).content.decode()
    assert asleep.id.hex[:8] in filtered
    assert stopped.id.hex[:8] not in filtered
    assert other.id.hex[:8] not in filtered
    assert "salvador-quick-filter salvador-waiting active" in filtered
    filtered = admin_client.get(LIST_URL, {"status__exact": "paused"}).content.decode()
    assert stopped.id.hex[:8] in filtered
    assert asleep.id.hex[:8] not in filtered


@pytest.mark.django_db
def test_a_running_task_whose_pause_was_requested_says_so(admin_client):
    TaskFactory(running=True, pause_requested_at=timezone.now())
    TaskFactory(running=True)
    html = admin_client.get(LIST_URL).content.decode()
    assert html.count('<span class="salvador-note">pause requested</span>') == 1
    TaskFactory(running=True, pause_requested_at=timezone.now(), cancel_requested_at=timezone.now())
    html = admin_client.get(LIST_URL).content.decode()
    assert html.count('<span class="salvador-note">cancel requested</span>') == 1  # it wins


# -- a waiting task's page ---------------------------------------------------------------


def waits_section(html: str) -> str:
    start = html.index("Waits, signals and events")
    return html[start : html.index("</fieldset>", start)]


@pytest.mark.admin_db
def test_a_waiting_task_page_says_what_it_waits_for_and_shows_signals_events_and_waits(
    backend, admin_client
):
    task = submit("approval", {"timeout": 3600})
    run_until_idle()
    send_signal(task.id, "reminder", {"note": "<b>soon</b>"})
    task = reloaded(task)
    assert task.status == TaskStatus.WAITING
    response = admin_client.get(change_url(task))
    assert response.status_code == 200
    html = response.content.decode()
    waits_for = html[html.index('class="form-row field-waiting_for_"') :]
    waits_for = waits_for[: waits_for.index("</div>\n\n")]
    assert "signal &#x27;approval&#x27; · until <time" in waits_for
    assert task.wake_at is not None
    assert f'datetime="{task.wake_at.isoformat()}"' in waits_for
    section = waits_section(html)
    wait_row = re.search(r'<tr class="salvador-wait-row open">(.*?)</tr>', section, re.S)
    assert wait_row is not None
    cells = [unescape(c.strip()) for c in re.findall(r"<td>(.*?)</td>", wait_row.group(1), re.S)]
    assert cells[:5] == ["decide", "1", "Signal", "approval", "Waiting"]
    assert cells[5].startswith('<time class="salvador-moment"')  # until
    assert cells[7] == "—"  # not finished
    assert "<td>reminder</td>" in section
    assert '<code class="salvador-value">{&quot;note&quot;: &quot;&lt;b&gt;soon' in section
    assert "<td>progress</td>" in section
    assert "&quot;waiting for approval&quot;" in section
    assert 'class="salvador-bar salvador-wait-open"' in html  # on the timeline, in its row
    assert "2 · decide" in html


@pytest.mark.admin_db
def test_a_wait_without_timeout_says_so_and_a_finished_wait_shows_its_outcome(
    backend, admin_client
):
    task = submit("approval", {})
    run_until_idle()
    html = admin_client.get(change_url(task)).content.decode()
    assert "signal &#x27;approval&#x27; · no timeout" in html
    assert "<td>no timeout</td>" in waits_section(html)
    send_signal(task.id, "approval", "yes")
    run_until_idle()
    html = admin_client.get(change_url(task)).content.decode()
    assert "field-waiting_for_" not in html  # completed: it waits for nothing
    section = waits_section(html)
    assert '<tr class="salvador-wait-row">' in section
    assert "<td>Received</td>" in section
    assert "No signal waits to be taken." in section  # the signal was taken
    assert 'class="salvador-bar salvador-wait"' in html


@pytest.mark.django_db
def test_a_paused_sleep_says_its_timer_waits_for_the_resume(admin_client):
    wake_at = timezone.now() + timedelta(hours=2)
    task = paused(waiting_for="", wake_at=wake_at)
    html = admin_client.get(change_url(task)).content.decode()
    assert "a timer · until <time" in html
    assert "its timer does not fire while the task is paused" in html


@pytest.mark.django_db
def test_a_task_without_waits_has_no_waits_section(admin_client):
    html = admin_client.get(change_url(TaskFactory(failed=True))).content.decode()
    assert "Waits, signals and events" not in html
    assert "field-waiting_for_" not in html


@pytest.mark.django_db
def test_the_page_lists_the_first_50_signals_and_events_and_the_latest_50_waits(admin_client):
    task = waiting()
    Signal.objects.using(db()).bulk_create(
        Signal(task=task, name=f"s{n:03}", payload=n) for n in range(60)
    )
    Event.objects.using(db()).bulk_create(
        Event(task=task, key=f"k{n:03}", value=n) for n in range(55)
    )
    begun = timezone.now() - timedelta(hours=1)
    Wait.objects.using(db()).bulk_create(
        Wait(
            task=task,
            step_name="decide",
            position=n,
            kind=WaitKind.SIGNAL,
            name="approval",
            started_at=begun + timedelta(seconds=n),
            finished_at=None if n == 70 else begun + timedelta(seconds=n, milliseconds=500),
            outcome=WaitOutcome.OPEN if n == 70 else WaitOutcome.RECEIVED,
        )
        for n in range(1, 71)
    )
    html = admin_client.get(change_url(task)).content.decode()
    section = waits_section(html)
    assert "<td>s049</td>" in section
    assert "<td>s050</td>" not in section
    assert "The first 50 of 60." in section
    assert "<td>k049</td>" in section
    assert "<td>k050</td>" not in section
    assert "The first 50 of 55." in section
    positions = re.findall(
        r'<tr class="salvador-wait-row(?: open)?">\s*<td>decide</td>\s*<td>(\d+)</td>', section
    )
    assert positions == [str(n) for n in range(21, 71)]  # the latest, in the order they began
    assert "The latest 50 of 70." in section


def payload_reads(queries: list[dict[str, str]], column: str) -> list[str]:
    """The statements that read the JSON ``column`` other than as the beginning of its text."""
    part = re.compile(
        r"SUBSTR(?:ING)?\(\(?CAST\("
        + re.escape(column)
        + r" AS text\)|SUBSTR(?:ING)?\(\("
        + re.escape(column)
        + r"\)::text"
    )
    return [
        query["sql"]
        for query in queries
        if query["sql"].count(column) > len(part.findall(query["sql"]))
    ]


@pytest.mark.admin_db
def test_the_page_reads_only_the_beginning_of_huge_payloads_and_values(backend, admin_client):
    task = waiting()
    for n in range(3):
        Signal.objects.using(backend).create(task=task, name="big", payload={"blob": "p" * HUGE})
        Event.objects.using(backend).create(task=task, key=f"big{n}", value=["v" * HUGE])
    with CaptureQueriesContext(connections[backend]) as captured:
        response = admin_client.get(change_url(task))
    assert response.status_code == 200
    queries = captured.captured_queries
    assert payload_reads(queries, '"salvador_signal"."payload"') == []
    assert payload_reads(queries, '"salvador_event"."value"') == []
    html = response.content.decode()
    assert len(html) < 100_000
    assert html.count("{&quot;blob&quot;: &quot;" + "p" * 190 + "…</code>") == 3
    assert html.count("[&quot;" + "v" * 198 + "…</code>") == 3


@pytest.mark.django_db
def test_a_waiting_task_page_costs_a_bounded_number_of_queries(
    admin_client, django_assert_max_num_queries
):
    task = waiting()
    Signal.objects.using(db()).bulk_create(
        Signal(task=task, name="s", payload=n) for n in range(80)
    )
    with django_assert_max_num_queries(11):  # 10, and a count: there are more than 50
        assert admin_client.get(change_url(task)).status_code == 200


# -- Send signal --------------------------------------------------------------------------


@pytest.mark.admin_db
def test_send_signal_wakes_a_waiting_task_and_is_recorded(backend, admin_client):
    task = submit("approval", {})
    run_until_idle()
    page = admin_client.get(change_url(task)).content.decode()
    assert f'href="{signal_url(task)}"' in page
    form = admin_client.get(signal_url(task)).content.decode()
    assert 'name="name" value="approval"' in form  # the name it waits for
    assert "It waits for signal &#x27;approval&#x27; · no timeout." in form
    html = post_signal(admin_client, task, "approval", '{"approved": true, "by": "ann"}')
    assert shown_messages(html) == "Signal &#x27;approval&#x27; sent: the task is due again."
    assert status_of(task) == TaskStatus.PENDING
    assert history_of(task) == ["Send signal 'approval'"]
    assert "admin · Send signal &#x27;approval&#x27;" in html  # the task page's history
    run_until_idle()
    task = reloaded(task)
    assert task.status == TaskStatus.COMPLETED
    assert task.state["answer"] == {"approved": True, "by": "ann"}


@pytest.mark.admin_db
def test_a_signal_nobody_waits_for_is_kept_and_listed(backend, admin_client):
    task = submit("approval", {})
    run_until_idle()
    html = post_signal(admin_client, task, "later", "")
    assert shown_messages(html) == (
        "Signal &#x27;later&#x27; sent: it is kept until the task waits for it."
    )
    assert status_of(task) == TaskStatus.WAITING
    signal = Signal.objects.using(backend).get(task_id=task.pk)
    assert (signal.name, signal.payload, signal.consumed_at) == ("later", None, None)
    assert str(signal.idempotency_key).startswith("admin:")
    assert "<td>later</td>" in waits_section(html)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "payload", "error"),
    [
        ("approval", "{approved: yes}", "Not valid JSON: Expecting property name"),
        ("approval", "NaN", "The payload is not JSON-serialisable"),
        ("approval", "[" * 200 + "]" * 200, "nested deeper than the maximum of 100 levels"),
        ("approval", '"\\u0000"', "The payload has a NUL character"),
        ("approval", '"\\ud800"', "The payload has a lone surrogate"),
        ("", "1", "This field is required."),
        ("x" * 201, "1", "Ensure this value has at most 200 characters (it has 201)."),
        ("ap\x00proval", "1", "Null characters are not allowed."),
    ],
)
def test_a_bad_name_or_payload_shows_the_form_again_and_sends_nothing(
    admin_client, name, payload, error
):
    task = waiting()
    key = form_key(admin_client.get(signal_url(task)).content.decode())
    data = {"name": name, "payload": payload, "idempotency_key": key}
    response = admin_client.post(signal_url(task), data)
    assert response.status_code == 200  # the form, again
    html = unescape(response.content.decode())
    assert error in html
    assert "Nothing was sent." in html
    assert f'name="idempotency_key" value="{key}"' in html  # the same form
    assert f"{payload}</textarea>" in html  # what was typed, to correct
    assert not Signal.objects.using(db()).exists()
    assert status_of(task) == TaskStatus.WAITING
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_a_payload_over_max_body_bytes_is_refused_by_the_form(admin_client, settings):
    settings.SALVADOR = {**settings.SALVADOR, "MAX_BODY_BYTES": 100}
    task = waiting()
    key = form_key(admin_client.get(signal_url(task)).content.decode())
    data = {"name": "approval", "payload": '"' + "x" * 200 + '"', "idempotency_key": key}
    html = admin_client.post(signal_url(task), data).content.decode()
    assert "The payload is 202 bytes serialised; MAX_BODY_BYTES is 100." in html
    assert not Signal.objects.using(db()).exists()


@pytest.mark.django_db
def test_a_form_posted_twice_sends_its_signal_once(admin_client):
    task = waiting()
    key = form_key(admin_client.get(signal_url(task)).content.decode())
    data = {"name": "approval", "payload": "1", "idempotency_key": key}
    first = admin_client.post(signal_url(task), data, follow=True).content.decode()
    assert "sent: the task is due again" in shown_messages(first)
    second = admin_client.post(signal_url(task), data, follow=True).content.decode()
    assert shown_messages(second) == "This signal was already sent."
    assert Signal.objects.using(db()).filter(task_id=task.pk).count() == 1
    assert history_of(task) == ["Send signal 'approval'"]


@pytest.mark.django_db
def test_a_forged_idempotency_key_is_refused(admin_client):
    task = waiting()
    data = {"name": "approval", "payload": "1", "idempotency_key": "admin:mine"}
    assert admin_client.post(signal_url(task), data).status_code == 200
    assert not Signal.objects.using(db()).exists()


@pytest.mark.django_db
def test_a_finished_task_offers_no_signal_and_refuses_one(admin_client):
    task = TaskFactory(completed=True)
    assert signal_url(task) not in admin_client.get(change_url(task)).content.decode()
    response = admin_client.get(signal_url(task), follow=True)
    assert "is completed: it takes no more signals" in shown_messages(response.content.decode())
    data = {"name": "approval", "payload": "1", "idempotency_key": "admin:" + "0" * 32}
    html = admin_client.post(signal_url(task), data, follow=True).content.decode()
    assert "Cannot signal task" in shown_messages(html)
    assert "it is completed" in shown_messages(html)
    assert not Signal.objects.using(db()).exists()
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_a_task_that_finished_after_its_form_opened_is_refused_cleanly(admin_client):
    task = waiting()
    key = form_key(admin_client.get(signal_url(task)).content.decode())
    Task.objects.using(db()).filter(pk=task.pk).update(status=TaskStatus.CANCELLED)
    data = {"name": "approval", "payload": "1", "idempotency_key": key}
    response = admin_client.post(signal_url(task), data, follow=True)
    assert response.redirect_chain == [(change_url(task), 302)]
    assert "Cannot signal task" in shown_messages(response.content.decode())
    assert not Signal.objects.using(db()).exists()
    assert not LogEntry.objects.exists()


# -- Pause and Resume ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "buttons"),
    [
        ({"status": TaskStatus.PENDING}, {"pause"}),
        ({"status": TaskStatus.WAITING}, {"pause"}),
        ({"status": TaskStatus.PAUSED}, {"resume"}),
        ({"running": True}, {"pause"}),
        ({"running": True, "pause_requested_at": timezone.now()}, {"pause", "resume"}),
        ({"completed": True}, set()),
        ({"failed": True}, set()),
    ],
)
def test_the_page_offers_pause_or_resume_as_the_status_allows(admin_client, fields, buttons):
    task = TaskFactory(workflow="approval", **fields)
    html = admin_client.get(change_url(task)).content.decode()
    offered = {name for name in ("pause", "resume") if triage_url(task, name) in html}
    assert offered == buttons


@pytest.mark.admin_db
def test_pause_and_resume_a_waiting_task_from_its_page(backend, admin_client):
    task = submit("approval", {})
    run_until_idle()
    page = admin_client.post(triage_url(task, "pause"), follow=True).content.decode()
    assert shown_messages(page) == "1 paused"
    assert status_of(task) == TaskStatus.PAUSED
    assert "signal &#x27;approval&#x27; · no timeout" in page  # it still says what it awaits
    send_signal(task.id, "approval", "yes")  # kept while paused
    assert status_of(task) == TaskStatus.PAUSED
    assert "<td>approval</td>" in waits_section(admin_client.get(change_url(task)).content.decode())
    page = admin_client.post(triage_url(task, "resume"), follow=True).content.decode()
    assert shown_messages(page) == "1 resumed"
    assert status_of(task) == TaskStatus.PENDING
    assert history_of(task) == ["Pause", "Resume"]
    assert "admin · Pause" in page
    run_until_idle()
    assert reloaded(task).state["answer"] == "yes"


@pytest.mark.django_db
def test_a_pause_button_on_a_task_that_finished_meanwhile_is_refused_cleanly(admin_client):
    task = waiting()
    Task.objects.using(db()).filter(pk=task.pk).update(status=TaskStatus.COMPLETED)
    page = admin_client.post(triage_url(task, "pause"), follow=True).content.decode()
    assert shown_messages(page) == "0 paused, 1 skipped: already completed"
    page = admin_client.post(triage_url(task, "resume"), follow=True).content.decode()
    assert shown_messages(page) == "0 resumed, 1 skipped: already completed"
    assert status_of(task) == TaskStatus.COMPLETED
    assert not LogEntry.objects.exists()


@pytest.mark.admin_db
def test_the_pause_and_resume_actions_report_each_task(backend, admin_client):
    pending, asleep, running = TaskFactory(), waiting(), TaskFactory(running=True)
    done = TaskFactory(completed=True)
    message = act(admin_client, "pause_action", [pending, asleep, running, done])
    assert message == (
        "2 paused, 1 pause requested (pauses after its current step), 1 skipped: already completed"
    )
    assert [status_of(t) for t in (pending, asleep, running)] == ["paused", "paused", "running"]
    assert reloaded(running).pause_requested_at is not None
    for task in (pending, asleep, running):
        assert history_of(task) == ["Pause"]
    assert history_of(done) == []
    message = act(admin_client, "resume_action", [pending, asleep, running, done])
    assert message == "3 resumed, 1 skipped: already completed"
    assert [status_of(t) for t in (pending, asleep)] == ["pending", "pending"]
    assert reloaded(running).pause_requested_at is None  # its request withdrawn
    assert history_of(running) == ["Pause", "Resume"]
    assert act(admin_client, "resume_action", [running]) == "0 resumed, 1 skipped: already running"


# -- permissions --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_viewer_gets_no_signal_form_pause_or_resume():
    client = staff_client("view_task")
    task, stopped = waiting(), paused()
    html = client.get(change_url(task)).content.decode()
    assert signal_url(task) not in html
    assert "/triage/" not in html
    assert "/triage/" not in client.get(change_url(stopped)).content.decode()
    listing = client.get(LIST_URL).content.decode()
    assert "pause_action" not in listing
    assert "resume_action" not in listing
    assert client.get(signal_url(task)).status_code == 403
    data = {"name": "approval", "payload": "1", "idempotency_key": "admin:" + "0" * 32}
    assert client.post(signal_url(task), data).status_code == 403
    assert client.post(triage_url(task, "pause")).status_code == 403
    assert client.post(triage_url(stopped, "resume")).status_code == 403
    act(client, "pause_action", [task])
    assert (status_of(task), status_of(stopped)) == ("waiting", "paused")
    assert not Signal.objects.using(db()).exists()
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_signal_and_pause_permissions_are_separate():
    signaller = staff_client("view_task", "signal_task")
    task = waiting()
    html = signaller.get(change_url(task)).content.decode()
    assert signal_url(task) in html
    assert triage_url(task, "pause") not in html
    assert signaller.post(triage_url(task, "pause")).status_code == 403
    pauser = staff_client("view_task", "pause_task")
    html = pauser.get(change_url(task)).content.decode()
    assert signal_url(task) not in html
    assert triage_url(task, "pause") in html
    assert "pause_action" in pauser.get(LIST_URL).content.decode()
    assert pauser.get(signal_url(task)).status_code == 403
    assert pauser.post(triage_url(task, "pause")).status_code == 302
    assert status_of(task) == TaskStatus.PAUSED


@pytest.mark.django_db
@pytest.mark.parametrize("permissions", [("signal_task", "pause_task"), ("view_task",), ()])
def test_the_signal_and_pause_urls_answer_alike_for_unknown_and_forbidden_tasks(permissions):
    client = staff_client(*permissions)
    task = waiting()
    missing = Task(pk="0" * 32)
    data = {"name": "approval", "payload": "1", "idempotency_key": "admin:" + "0" * 32}
    for target in (task, missing):
        assert client.get(signal_url(target)).status_code == 403
        assert client.post(signal_url(target), data).status_code == 403
        assert client.post(triage_url(target, "pause")).status_code == 403
    assert status_of(task) == TaskStatus.WAITING


@pytest.mark.django_db
def test_an_unknown_task_is_404_for_a_user_who_may_signal(admin_client):
    assert admin_client.get(signal_url(Task(pk="0" * 32))).status_code == 404


@pytest.mark.django_db
def test_the_signal_form_needs_its_csrf_token():
    user = User.objects.create_user("operator", is_staff=True)
    for codename in ("view_task", "signal_task", "pause_task"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    task = waiting()
    assert 'name="csrfmiddlewaretoken"' in client.get(signal_url(task)).content.decode()
    data = {"name": "approval", "payload": "1", "idempotency_key": "admin:" + "0" * 32}
    assert client.post(signal_url(task), data).status_code == 403
    assert client.post(triage_url(task, "pause")).status_code == 403
    assert not Signal.objects.using(db()).exists()


# -- overview -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_overview_counts_waiting_and_paused_tasks(admin_client):
    for _ in range(3):
        waiting()
    paused()
    response = admin_client.get(OVERVIEW_URL)
    rows = {item.name: item for item, _cells in response.context["rows"]}
    assert rows["approval"].oldest_due is None  # waiting and paused tasks are not due
    TaskFactory(workflow="approval")
    response = admin_client.get(OVERVIEW_URL)
    rows = {item.name: item for item, _cells in response.context["rows"]}
    counts = {status: cell.count for status, cell in rows["approval"].counts.items()}
    assert counts == {"waiting": 3, "paused": 1, "pending": 1}
    html = response.content.decode()
    assert '<th scope="col">Waiting</th>' in html
    assert '<th scope="col">Paused</th>' in html
    assert 'href="/admin/salvador/task/?workflow=approval&amp;status__exact=waiting">3<' in html
    assert 'href="/admin/salvador/task/?workflow=approval&amp;status__exact=paused">1<' in html
