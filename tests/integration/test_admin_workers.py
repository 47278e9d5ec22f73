"""The workers page: alive and gone, busy, what each runs now; read-only, and only a
gone worker's row may be deleted."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from salvador_django.models import WorkerProcess
from tests.factories import WorkerProcessFactory

LIST_URL = "/admin/salvador/workerprocess/"

pytestmark = pytest.mark.admin_db


def rows_by_name(response) -> dict[str, WorkerProcess]:
    return {row.name: row for row in response.context["cl"].result_list}


def test_the_page_shows_each_worker_alive_or_gone_busy_and_what_it_runs(backend, admin_client):
    task = uuid.uuid4()
    WorkerProcessFactory(
        name="web-1:100:worker",
        running=[{"task": str(task), "workflow": "three-steps", "step": "second"}],
        workflows=["three-steps", "flaky"],
    )
    WorkerProcessFactory(name="web-2:200:worker", host="web-2")
    WorkerProcessFactory(name="web-3:300:worker", host="web-3", gone=True)

    response = admin_client.get(LIST_URL)
    assert response.status_code == 200
    shown = rows_by_name(response)
    assert {name: row.alive for name, row in shown.items()} == {
        "web-1:100:worker": True,
        "web-2:200:worker": True,
        "web-3:300:worker": False,
    }
    html = response.content.decode()
    assert f'href="/admin/salvador/task/{task}/change/">three-steps · second' in html
    assert "1 / 4" in html  # busy: one task of four
    assert '<span class="help">idle</span> 0 / 4' in html
    assert "three-steps, flaky" in html
    assert 'class="salvador-badge salvador-gone"' in html
    assert "1 h 0 min ago" in html  # the gone worker's last heartbeat

    alive = admin_client.get(LIST_URL, {"state": "alive"})
    assert set(rows_by_name(alive)) == {"web-1:100:worker", "web-2:200:worker"}
    gone = admin_client.get(LIST_URL, {"state": "gone"})
    assert set(rows_by_name(gone)) == {"web-3:300:worker"}


def test_no_worker_can_be_added_or_changed(backend, admin_client):
    worker = WorkerProcessFactory()
    assert admin_client.get(f"{LIST_URL}add/").status_code == 403
    page = admin_client.get(f"{LIST_URL}{worker.pk}/change/")
    assert page.status_code == 200  # shown read-only
    assert b'name="_save"' not in page.content
    assert admin_client.post(f"{LIST_URL}{worker.pk}/change/", {"name": "x"}).status_code == 403


def test_only_gone_workers_are_deleted(backend, admin_client):
    alive = WorkerProcessFactory(name="alive")
    gone = WorkerProcessFactory(name="gone", gone=True)
    selected = {"action": "delete_selected", "_selected_action": [alive.pk, gone.pk]}
    confirm = admin_client.post(LIST_URL, selected)
    assert confirm.status_code == 200
    assert "1 skipped: still alive" in confirm.content.decode()
    admin_client.post(LIST_URL, {**selected, "post": "yes"})
    assert set(WorkerProcess.objects.using(backend).values_list("name", flat=True)) == {"alive"}

    # One by one: a live worker's page offers no delete, and refuses it.
    assert admin_client.post(f"{LIST_URL}{alive.pk}/delete/", {"post": "yes"}).status_code == 403
    assert WorkerProcess.objects.using(backend).filter(pk=alive.pk).exists()


def test_the_overview_links_to_the_workers_for_those_who_may_see_them(backend, admin_client):
    WorkerProcessFactory()
    WorkerProcessFactory(gone=True)
    html = admin_client.get("/admin/salvador/overview/").content.decode()
    assert f'href="{LIST_URL}" class="salvador-workers-link">Workers: 1 alive<' in html

    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_task"))
    client = Client()
    client.force_login(viewer)
    assert "salvador-workers-link" not in client.get("/admin/salvador/overview/").content.decode()
