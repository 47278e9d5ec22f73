"""Signed signal links: the confirmation page, its POST, machine JSON POSTs, refusals."""

from __future__ import annotations

import html
import json
import time
import uuid
from typing import Any

import pytest
from django.test import Client, override_settings

from salvador_django import TaskStatus, send_signal, submit
from salvador_django.links import signal_path
from salvador_django.models import Signal, Task
from salvador_django.testing import run_until_idle

JSON = "application/json"


def waiting_task() -> Task:
    """An "approval" task waiting for its "approval" signal."""
    task = submit("approval", {})
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.waiting_for) == (TaskStatus.WAITING, "approval")
    return task


def completed_task() -> Task:
    task = waiting_task()
    send_signal(task.id, "approval", "by mail")
    run_until_idle()
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    return task


def machine_post(client: Client, url: str, body: object = "", content_type: str = JSON) -> Any:
    """A JSON POST, as a payment provider's callback sends it (an empty body too)."""
    return client.post(url, data=body, content_type=content_type, CONTENT_TYPE=content_type)


def signals(task: Task) -> list[tuple[str, object]]:
    rows = Signal.objects.using(task._state.db).filter(task_id=task.id).order_by("id")
    return list(rows.values_list("name", "payload"))


def status(task: Task) -> str:
    task.refresh_from_db()
    return task.status


def altered(url: str) -> str:
    """``url`` with one character of its token's signed data changed."""
    start = url.index("/signal/") + len("/signal/") + 5
    flipped = "A" if url[start] != "A" else "B"
    return url[:start] + flipped + url[start + 1 :]


def test_a_get_shows_what_the_link_sends_and_changes_nothing(backend, client: Client):
    task = waiting_task()
    url = task.signal_url("approval", {"approved": True, "note": "<script>alert(1)</script>"})
    response = client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "approval" in page
    assert '{\n  "approved": true,\n  "note": ' in html.unescape(page)  # pretty JSON
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert page.count("<button") == 1
    assert 'name="csrfmiddlewaretoken"' in page
    assert response["Cache-Control"].startswith("max-age=0")
    assert client.get(url).status_code == 200  # a mail scanner's second look
    assert signals(task) == []
    assert status(task) == TaskStatus.WAITING


def test_the_confirmed_post_wakes_the_task_which_completes_with_the_payload(
    backend, client: Client
):
    task = waiting_task()
    url = task.signal_url("approval", {"approved": True})
    response = client.post(url)
    assert response.status_code == 200
    assert "Done" in response.content.decode()
    assert status(task) == TaskStatus.PENDING
    assert run_until_idle() == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    assert task.state["answer"] == {"approved": True}


def test_a_replayed_link_sends_nothing_more(backend, client: Client):
    task = waiting_task()
    url = task.signal_url("approval", "yes")
    assert client.post(url).status_code == 200
    again = client.post(url)
    assert again.status_code == 200
    assert "already sent" in again.content.decode()
    assert "already sent" in client.get(url).content.decode()  # no button any more
    assert "<button" not in client.get(url).content.decode()
    machine = machine_post(client, url)
    assert machine.json() == {"delivered": False, "task": str(task.id), "signal": "approval"}
    assert signals(task) == [("approval", "yes")]
    run_until_idle()
    assert client.post(url).status_code == 200  # used: said so even once the task finished
    assert signals(task) == [("approval", "yes")]


def test_two_links_send_two_signals(backend, client: Client):
    task = waiting_task()
    client.post(task.signal_url("approval", 1))
    client.post(task.signal_url("approval", 2))
    assert signals(task) == [("approval", 1), ("approval", 2)]


def test_a_form_post_needs_its_csrf_token_a_json_post_does_not(backend):
    task = waiting_task()
    strict = Client(enforce_csrf_checks=True)
    url = task.signal_url("approval", "yes")
    assert strict.post(url).status_code == 403
    assert signals(task) == []
    page = strict.get(url).content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    assert strict.post(url, {"csrfmiddlewaretoken": token}).status_code == 200
    assert signals(task) == [("approval", "yes")]

    other = task.signal_url("approval", "again")
    response = machine_post(strict, other)
    assert response.status_code == 200
    assert response.json()["delivered"] is True


def test_a_machine_post_sends_the_link_and_answers_json(backend, client: Client):
    task = waiting_task()
    url = task.signal_url("approval", {"approved": True})
    response = machine_post(client, url)
    assert response.status_code == 200
    assert response.json() == {"delivered": True, "task": str(task.id), "signal": "approval"}
    assert status(task) == TaskStatus.PENDING
    run_until_idle()
    task.refresh_from_db()
    assert (task.status, task.state["answer"]) == (TaskStatus.COMPLETED, {"approved": True})


def test_a_machine_posts_body_is_the_payload_of_a_link_without_one(backend, client: Client):
    task = waiting_task()
    body = {"event": "payment.succeeded", "amount": 4200}
    url = task.signal_url("approval")
    response = machine_post(client, url, json.dumps(body), "application/json; charset=utf-8")
    assert response.json()["delivered"] is True
    assert signals(task) == [("approval", body)]


def test_a_machine_post_never_replaces_the_links_own_payload(backend, client: Client):
    task = waiting_task()
    url = task.signal_url("approval", {"approved": False})
    response = machine_post(client, url, {"approved": True})
    assert response.json()["delivered"] is True
    assert signals(task) == [("approval", {"approved": False})]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("not json", "The body is not JSON"),
        ('{"amount": NaN}', "NaN is not JSON"),
        ("[" * 100_000, "The body is not JSON"),  # too deep for the parser
        ("[" * 101 + "]" * 101, "nested deeper than the maximum of"),  # 100; 31 on MariaDB
        (json.dumps({"x": "\x00"}), "NUL character"),
        (json.dumps({"x": "a" * 2000}), "larger than MAX_BODY_BYTES (1000 bytes)"),
    ],
)
def test_a_machine_post_with_a_bad_body_changes_nothing(
    backend, client: Client, settings, body, error
):
    settings.SALVADOR = {**settings.SALVADOR, "MAX_BODY_BYTES": 1000 if "x" in body else 10**6}
    task = waiting_task()
    response = machine_post(client, task.signal_url("approval"), body)
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert signals(task) == []
    assert status(task) == TaskStatus.WAITING


def link_refusals(client: Client, url: str) -> list[tuple[int, str]]:
    """The status and message of a GET, a form POST and a JSON POST of ``url``."""
    get, post = client.get(url), client.post(url)
    machine = machine_post(client, url)
    assert "<button" not in get.content.decode() + post.content.decode()
    message = machine.json()["error"]
    for response in (get, post):
        assert message in response.content.decode()
    return [(response.status_code, message) for response in (get, post, machine)]


def test_an_expired_link_is_refused(backend, client: Client):
    task = waiting_task()
    url = task.signal_url("approval", "yes", expires=0.5)
    assert client.get(url).status_code == 200
    time.sleep(0.6)
    assert link_refusals(client, url) == [(400, "This link has expired.")] * 3
    assert signals(task) == []
    assert status(task) == TaskStatus.WAITING


def test_an_altered_link_is_refused(backend, client: Client):
    task = waiting_task()
    url = altered(task.signal_url("approval", "yes"))
    refused = link_refusals(client, url)
    assert refused == [(400, "This link is not valid: it was altered or not made here.")] * 3
    assert signals(task) == []
    assert status(task) == TaskStatus.WAITING


def test_a_link_signed_with_another_secret_key_is_refused(backend, client: Client):
    task = waiting_task()
    with override_settings(SECRET_KEY="another project"):
        url = task.signal_url("approval", "yes")
    refused = link_refusals(client, url)
    assert refused == [(400, "This link is not valid: it was altered or not made here.")] * 3
    assert signals(task) == []


def test_a_link_to_an_unknown_task_is_not_found(backend, client: Client):
    url = signal_path(uuid.uuid4(), "approval", expires=60)
    refused = link_refusals(client, url)
    assert refused == [(404, "The task of this link does not exist (any more).")] * 3


def test_a_link_to_a_finished_task_is_gone(backend, client: Client):
    task = completed_task()
    url = task.signal_url("approval", "late")
    message = "This task has finished (completed): the link can no longer send it anything."
    assert link_refusals(client, url) == [(410, message)] * 3
    assert signals(task) == [("approval", "by mail")]


@pytest.mark.parametrize("method", ["put", "patch", "delete", "head", "options"])
def test_other_methods_are_not_allowed(backend, client: Client, method):
    task = waiting_task()
    url = task.signal_url("approval", "yes")
    response = getattr(client, method)(url)
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    assert signals(task) == []
