"""The admin and graphs: a workflow's page (its graph drawn), the links to it, a graph
task's steps, skipped steps and parallel steps on the task page."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from salvador_django import Workflow, submit
from salvador_django.conf import get_settings
from salvador_django.models import Task
from salvador_django.status import StepRunStatus, TaskStatus
from salvador_django.testing import run_until_idle
from tests.factories import StepRunFactory, TaskFactory
from tests.integration.test_admin import OVERVIEW_URL, change_url, staff_client


def noop(task):
    return None


def asked(task):
    return bool(task.body.get("insurance"))


def release(task):
    return None


BOOKING = "admin-graph/booking"  # a slash: the page's URL takes any name


@pytest.fixture
def booking(workflow_names) -> Workflow:
    workflow_names.append(BOOKING)
    workflow = Workflow(BOOKING)
    for name in ("flight", "hotel", "car"):
        workflow.step(name, noop, after=[], compensate=release)
    workflow.step("charge", noop, after=["flight", "hotel", "car"])
    workflow.step("insurance", noop, when=asked)
    workflow.step("notify", noop, after=[], after_any=["insurance", "charge"])
    return workflow


def workflow_page_url(name: str) -> str:
    return reverse("admin:salvador_overview_workflow", args=[name])


def field(html: str, name: str) -> str:
    """The HTML of the task page's read-only field ``name``."""
    found = html[html.index(f'class="form-row field-{name}"') :]
    return found[: found.index("</div>\n\n")]


# -- the workflow's page --------------------------------------------------------------


@pytest.mark.django_db
def test_the_workflow_page_draws_its_graph_and_lists_its_steps(admin_client, booking):
    url = workflow_page_url(BOOKING)
    assert url == "/admin/salvador/overview/workflow/admin-graph/booking/"
    response = admin_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<svg class="salvador-graph"' in html
    assert len(re.findall(r'<g class="salvador-step', html)) == 6
    assert html.count('class="salvador-arrow"') == 4  # flight, hotel, car -> charge -> insurance
    assert html.count('class="salvador-arrow salvador-arrow-any"') == 2
    assert 'class="salvador-step salvador-conditional"' in html  # insurance
    assert html.count("salvador-compensated") == 3
    assert '<path class="salvador-when-marker"' in html
    rows = re.findall(r"<tr><td>(\d+)</td><th scope=\"row\">(.*?)</th><td>(.*?)</td>", html)
    assert [(n, name, unescape(waits)) for n, name, waits in rows] == [
        ("1", "flight", "root"),
        ("2", "hotel", "root"),
        ("3", "car", "root"),
        ("4", "charge", "after: flight, hotel, car"),
        ("5", "insurance", f"after: charge; when: {__name__}.asked"),
        ("6", "notify", "after any: insurance, charge"),
    ]
    assert f"undo: {__name__}.release" in html
    assert 'href="/admin/salvador/task/?workflow=admin-graph%2Fbooking"' in html


@pytest.mark.django_db
def test_an_unknown_workflow_is_404(admin_client):
    assert admin_client.get(workflow_page_url("admin-graph-nope")).status_code == 404


@pytest.mark.django_db
def test_the_workflow_page_needs_view_task(booking):
    assert staff_client().get(workflow_page_url(BOOKING)).status_code == 403
    assert staff_client("view_task").get(workflow_page_url(BOOKING)).status_code == 200


@pytest.mark.django_db
def test_a_bad_graph_shows_its_error_and_its_steps(admin_client, workflow_names):
    workflow_names.append("admin-graph-cycle")
    Workflow("admin-graph-cycle").step("a", noop, after="b").step("b", noop)
    response = admin_client.get(workflow_page_url("admin-graph-cycle"))
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "Workflow 'admin-graph-cycle' has a cycle: a waits for b waits for a." in html
    assert '<svg class="salvador-graph"' not in html
    assert "<td>after: b</td>" in html


@pytest.mark.django_db
def test_a_step_name_is_escaped_on_the_page(admin_client, workflow_names):
    workflow_names.append("admin-graph-escape")
    Workflow("admin-graph-escape").step("<script>alert(1)</script>", noop)
    html = admin_client.get(workflow_page_url("admin-graph-escape")).content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# -- links to it ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_overview_links_each_registered_workflow_to_its_page(admin_client, booking):
    TaskFactory(workflow="admin-graph-gone")  # tasks of a workflow no longer registered
    response = admin_client.get(OVERVIEW_URL)
    html = response.content.decode()
    assert f'class="salvador-graph-link" href="{workflow_page_url(BOOKING)}"' in html
    assert f'href="{workflow_page_url("three-steps")}"' in html
    rows = {item.name: item for item, _cells in response.context["rows"]}
    assert rows["admin-graph-gone"].graph_url == ""


@pytest.mark.django_db
def test_a_task_page_links_to_its_workflow_s_graph(admin_client, booking):
    task = TaskFactory(workflow=BOOKING, step_name="flight")
    html = admin_client.get(change_url(task)).content.decode()
    assert f'<a href="{workflow_page_url(BOOKING)}" class="salvador-graph-link">' in html
    gone = TaskFactory(workflow="admin-graph-gone")
    assert "salvador-graph-link" not in admin_client.get(change_url(gone)).content.decode()


# -- a graph task's steps ------------------------------------------------------------


@pytest.mark.django_db
def test_a_graph_task_shows_each_step_done_skipped_failed_or_not_done(admin_client, booking):
    task = TaskFactory(
        workflow=BOOKING,
        status=TaskStatus.FAILED,
        step=3,
        step_name="car",
        failed_step="car",
        progress={
            "done": ["flight", "hotel"],
            "skipped": [],
            "attempts": {"car": 3, "hotel": 1},
            "failed": ["car"],
        },
    )
    html = admin_client.get(change_url(task)).content.decode()
    steps = field(html, "steps_")
    items = re.findall(r"<li>(.*?) <span class=\"salvador-badge salvador-([a-z-]+)\">", steps)
    assert items == [
        ("flight", "completed"),
        ("hotel", "completed"),
        ("car", "failed"),
        ("charge", "not-done"),
        ("insurance", "not-done"),
        ("notify", "not-done"),
    ]
    assert "1 failed attempt</span>" in steps  # hotel's, before it completed


@pytest.mark.django_db
def test_a_skipped_step_has_its_own_badge_in_steps_attempts_and_timeline(admin_client, booking):
    start = timezone.now() - timedelta(seconds=10)
    task = TaskFactory(
        workflow=BOOKING,
        status=TaskStatus.COMPLETED,
        step=6,
        step_name="",
        finished_at=timezone.now(),
        progress={
            "done": ["flight", "hotel", "car", "charge", "insurance", "notify"],
            "skipped": ["insurance"],
            "attempts": {},
            "failed": [],
        },
    )
    StepRunFactory(task=task, index=3, name="charge", started_at=start, finished_at=start)
    StepRunFactory(
        task=task,
        index=4,
        name="insurance",
        attempt=0,
        status=StepRunStatus.SKIPPED,
        started_at=start + timedelta(seconds=1),
        finished_at=start + timedelta(seconds=1),
    )
    html = admin_client.get(change_url(task)).content.decode()
    assert '<li>insurance <span class="salvador-badge salvador-skipped">Skipped</span>' in html
    inline = html[html.index('id="step_runs-group"') :]
    assert '<span class="salvador-badge salvador-skipped">Skipped</span>' in inline
    assert 'class="salvador-bar salvador-skipped"' in html
    assert 'class="salvador-timeline-row skipped"' in html
    assert "insurance · Skipped: its condition was false" in html


@pytest.mark.django_db
def test_a_straight_line_task_has_no_steps_field(admin_client):
    task = TaskFactory()
    html = admin_client.get(change_url(task)).content.decode()
    assert "field-steps_" not in html


# -- parallel steps on the timeline ---------------------------------------------------


@pytest.mark.django_db
def test_steps_that_ran_at_the_same_time_are_shaded_on_the_timeline(admin_client, booking):
    start = timezone.now() - timedelta(seconds=30)
    task = TaskFactory(workflow=BOOKING, step=3, step_name="charge", progress={"done": []})
    for index, (name, seconds) in enumerate([("flight", 4), ("hotel", 6), ("car", 2)]):
        StepRunFactory(
            task=task,
            index=index,
            name=name,
            started_at=start,
            finished_at=start + timedelta(seconds=seconds),
        )
    html = admin_client.get(change_url(task)).content.decode()
    assert html.count('<rect class="salvador-overlap"') == 2  # 3 at once, then 2
    assert "3 steps at the same time" in html
    assert "up to 3 at once" in html

    line = TaskFactory()
    for index, name in enumerate(["first", "second"]):
        begun = start + timedelta(seconds=index * 5)
        ended = begun + timedelta(seconds=5)  # when the next one begins: no overlap
        StepRunFactory(task=line, index=index, name=name, started_at=begun, finished_at=ended)
    html = admin_client.get(change_url(line)).content.decode()
    assert "salvador-overlap" not in html
    assert "at once" not in html


# -- a graph task the engine ran -------------------------------------------------------


@pytest.mark.django_db
def test_the_page_of_a_conditional_task_the_engine_ran(admin_client):
    task = submit("conditional", {"insure": True})
    run_until_idle(["conditional"])
    task = Task.objects.using(get_settings().DATABASE).get(pk=task.pk)
    assert task.status == TaskStatus.COMPLETED
    html = admin_client.get(change_url(task)).content.decode()
    items = re.findall(
        r"<li>(.*?) <span class=\"salvador-badge salvador-([a-z-]+)\">", field(html, "steps_")
    )
    assert items == [
        ("quote", "completed"),
        ("insurance", "completed"),
        ("upgrade", "skipped"),
        ("notify", "completed"),
        ("done", "completed"),
    ]
    assert 'class="salvador-bar salvador-skipped"' in html  # upgrade, on the timeline
    assert f'href="{workflow_page_url("conditional")}"' in html
    page = admin_client.get(workflow_page_url("conditional")).content.decode()
    # notify waits for any of insurance and upgrade, and (after left out) for upgrade:
    # one dashed arrow, from insurance
    assert page.count('class="salvador-arrow salvador-arrow-any"') == 1
    assert page.count('class="salvador-step salvador-conditional"') == 2


@pytest.mark.django_db
def test_requeue_from_a_step_says_what_it_runs_again_in_a_graph(admin_client, booking):
    graph_task = TaskFactory(
        workflow=BOOKING, status=TaskStatus.FAILED, step=1, step_name="car",
        failed_step="car", progress={"done": ["flight"], "skipped": [], "failed": ["car"]},
    )  # fmt: skip
    line_task = TaskFactory(failed=True)
    graph_page = admin_client.get(change_url(graph_task)).content.decode()
    line_page = admin_client.get(change_url(line_task)).content.decode()
    assert "with every step that waits for it" in graph_page
    assert "The steps before it are not run again" not in graph_page
    assert "The steps before it are not run again" in line_page
