"""The admin of child tasks: a child's parent, a parent's children, results, the filters."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from salvador_django import submit
from salvador_django.conf import get_settings
from salvador_django.models import Task
from salvador_django.status import TaskStatus
from salvador_django.testing import run_until_idle
from tests.factories import TaskFactory
from tests.integration.test_admin import (
    HUGE,
    LIST_URL,
    act,
    change_url,
    make_huge,
    status_of,
    triage_url,
)

MANY = 10_000
#: The statuses of the many children, by the remainder of their number by 10.
STATUS_OF = {0: TaskStatus.FAILED, 1: TaskStatus.RUNNING, 2: TaskStatus.WAITING}


def reloaded(task: Task) -> Task:
    return Task.objects.using(get_settings().DATABASE).get(pk=task.pk)


def page(client, task: Task, **query: object) -> str:
    response = client.get(change_url(task), query)
    assert response.status_code == 200
    return str(response.content.decode())


def listed(client, **query: object) -> str:
    response = client.get(LIST_URL, query)
    assert response.status_code == 200
    return str(response.content.decode())


def parent_of(count: int) -> Task:
    """A parent waiting for ``count`` children written straight into the table: every
    tenth failed, running or waiting (by its number's last digit), the others completed."""
    parent = TaskFactory(
        workflow="fan-out",
        status=TaskStatus.WAITING,
        step_name="spread",
        has_children=True,
        children_left=count,
    )
    children = [
        Task(
            workflow="square",
            body={"n": n},
            status=STATUS_OF.get(n % 10, TaskStatus.COMPLETED),
            step_name="square",
            parent=parent,
            parent_step="spread",
            child_key=f"#{n + 1}",
            awaited=True,
        )
        for n in range(count)
    ]
    Task.objects.using(get_settings().DATABASE).bulk_create(children, batch_size=1000)
    return parent


def whole_result_reads(queries: list[dict[str, str]]) -> list[str]:
    """The statements that read ``return_value`` whole: not only the beginning or the
    length of its text."""
    column = re.escape('"salvador_task"."return_value"')
    part = re.compile(
        rf"(?:SUBSTR|SUBSTRING|LENGTH)\((?:CAST\({column} AS text\)|\({column}\)::text)"
    )
    return [
        q["sql"] for q in queries if q["sql"].count('"return_value"') > len(part.findall(q["sql"]))
    ]


def listed_ids(html: str) -> set[str]:
    """The short ids of the tasks in a list's rows."""
    return set(re.findall(r'<th class="field-short_id"><a href="[^"]*">([0-9a-f]{8})</a>', html))


def children_section(html: str) -> str:
    start = html.index('class="form-row field-children_"')
    return html[start : html.index("</fieldset>", start)]


def child_keys(html: str) -> list[str]:
    """The keys of the children listed on a parent's page, in order."""
    rows = re.findall(r"<tr>\s*<td><a href.*?</tr>", children_section(html), re.S)
    return [re.findall(r"<td>(.*?)</td>", row, re.S)[3] for row in rows]


# -- a child and its parent -------------------------------------------------------------


@pytest.mark.admin_db
def test_a_child_s_page_links_its_parent_and_says_its_step_key_and_detachment(
    backend, admin_client
):
    parent = submit("leaves-children", {})
    run_until_idle()
    children = {c.child_key: c for c in reloaded(parent).children.all()}
    html = page(admin_client, children["detached"])
    assert "Parent and children" in html
    assert (
        f'<a href="{change_url(parent)}" class="salvador-parent">leaves-children '
        f"{parent.id.hex[:8]}</a> "
        '<span class="salvador-badge salvador-completed">Completed</span>'
    ) in html
    field = html[html.index('class="form-row field-parent_step"') :]
    assert '<div class="readonly">start</div>' in field[: field.index("</div>\n\n")]
    field = html[html.index('class="form-row field-child_key"') :]
    assert '<div class="readonly">detached</div>' in field[: field.index("</div>\n\n")]
    field = html[html.index('class="form-row field-detached"') :]
    assert 'alt="True"' in field[: field.index("</div>\n\n")]
    attached = page(admin_client, children["attached"])
    field = attached[attached.index('class="form-row field-detached"') :]
    assert 'alt="False"' in field[: field.index("</div>\n\n")]
    assert "field-children_" not in html  # a child without children of its own


@pytest.mark.admin_db
def test_a_top_level_task_without_children_has_no_tree_fields(backend, admin_client):
    html = page(admin_client, TaskFactory(failed=True))
    assert "Parent and children" not in html
    assert "field-parent_" not in html


@pytest.mark.admin_db
def test_a_parent_s_page_counts_and_lists_its_children(backend, admin_client):
    parent = submit("leaves-children", {})
    run_until_idle()
    html = page(admin_client, parent)
    assert "field-parent_" not in html  # a top-level task
    section = children_section(html)
    assert "<td>cancelled</td>" not in section  # statuses are badges
    counts = re.findall(
        r'<a href="([^"]*)" class="salvador-children-count">'
        r'<span class="salvador-badge salvador-(\w+)">\w+</span> (\d+)</a>',
        section,
    )
    query = f"parent__id__exact={parent.id}"
    assert [(url, status, n) for url, status, n in counts] == [
        (f"{LIST_URL}?{query}&amp;status__exact=waiting", "waiting", "1"),
        (f"{LIST_URL}?{query}&amp;status__exact=cancelled", "cancelled", "1"),
    ]
    assert f'<a href="{LIST_URL}?{query}" class="salvador-children-list">' in section
    assert "All 2 children in the task list" in section
    assert child_keys(html) == ["attached", "detached"]
    assert "Children 1 to 2 of 2, in the order they were started." in section


@pytest.mark.admin_db
def test_a_parent_waiting_for_children_says_how_many_are_left(backend, admin_client):
    parent = submit("waiting-children", {"count": 3})
    run_until_idle()
    html = page(admin_client, parent)
    assert "3 unfinished children · no timeout" in html
    assert "All 3 children in the task list" in html


# -- results ----------------------------------------------------------------------------


@pytest.mark.admin_db
def test_a_completed_task_shows_its_result_and_others_do_not(backend, admin_client):
    parent = submit("fan-out", {"count": 3})
    run_until_idle()
    assert reloaded(parent).status == TaskStatus.COMPLETED
    html = page(admin_client, parent)
    field = html[html.index('class="form-row field-result_"') :]
    assert '<pre class="salvador-pre">5</pre>' in field[: field.index("</div>\n\n")]
    child = reloaded(parent).children.get(child_key="#3")
    assert '<pre class="salvador-pre">4</pre>' in page(admin_client, child)
    assert "field-result_" not in page(admin_client, TaskFactory(failed=True))
    returned_none = page(admin_client, TaskFactory(completed=True))
    assert '<pre class="salvador-pre">null</pre>' in returned_none


@pytest.mark.admin_db
def test_a_result_is_pretty_when_short_and_cut_when_huge_and_never_read_whole(
    backend, admin_client
):
    small, huge = TaskFactory(completed=True), TaskFactory(completed=True)
    make_huge([small], return_value={"total": 3, "pages": ["<b>a</b>", "b"]})
    make_huge([huge], return_value={"big": "x" * HUGE})
    html = page(admin_client, small)
    assert (
        '<pre class="salvador-pre">{\n  &quot;pages&quot;: [\n    &quot;&lt;b&gt;a&lt;/b&gt;'
    ) in html
    with CaptureQueriesContext(connections[backend]) as captured:
        html = page(admin_client, huge)
    assert whole_result_reads(captured.captured_queries) == []
    assert len(html) < 100_000
    length = len('{"big": ""}') + HUGE
    assert f"… {length - 10_000:,} more characters" in html
    with CaptureQueriesContext(connections[backend]) as captured:
        listed(admin_client)
    assert whole_result_reads(captured.captured_queries) == []


# -- ten thousand children --------------------------------------------------------------


@pytest.mark.admin_db
def test_a_parent_of_ten_thousand_children_renders_a_page_of_them_in_few_queries(
    backend, admin_client
):
    few, many = parent_of(3), parent_of(MANY)
    page(admin_client, TaskFactory())  # what the first page caches (the content type)
    with CaptureQueriesContext(connections[backend]) as captured:
        few_html = page(admin_client, few)
    few_queries = len(captured)
    assert child_keys(few_html) == ["#1", "#2", "#3"]
    with CaptureQueriesContext(connections[backend]) as captured:
        html = page(admin_client, many)
    assert len(captured) == few_queries <= 16  # no query per child
    for query in captured.captured_queries:
        sql = query["sql"].upper()
        if "PARENT_ID" in sql:  # no query reads every child: a count or a page of them
            assert "GROUP BY" in sql or "LIMIT" in sql, query["sql"]
    assert len(html) < 150_000
    section = children_section(html)
    counts = re.findall(r'salvador-badge salvador-(\w+)">\w+</span> ([\d,]+)</a>', section)
    assert counts == [
        ("running", "1,000"),
        ("waiting", "1,000"),
        ("completed", "7,000"),
        ("failed", "1,000"),
    ]
    assert "All 10000 children in the task list" in section
    assert child_keys(html) == [f"#{n}" for n in range(1, 51)]
    assert "Children 1 to 50 of 10,000, in the order they were started." in section
    pages = re.findall(r'<a href="\?children_page=(\d+)">', section)
    assert pages == ["2", "3", "200"]  # the others elided
    assert '<span class="this-page">1</span>' in section
    assert section.count("<span>…</span>") == 1


@pytest.mark.admin_db
def test_the_children_page_parameter_turns_the_pages(backend, admin_client):
    parent = parent_of(120)
    html = page(admin_client, parent, children_page=2)
    assert child_keys(html) == [f"#{n}" for n in range(51, 101)]
    assert '<span class="this-page">2</span>' in html
    assert child_keys(page(admin_client, parent, children_page=9)) == [
        f"#{n}" for n in range(101, 121)
    ]  # past the end: the last page
    assert child_keys(page(admin_client, parent, children_page="x"))[0] == "#1"


@pytest.mark.admin_db
def test_the_list_of_ten_thousand_children_costs_a_bounded_number_of_queries(backend, admin_client):
    parent = parent_of(MANY)
    with CaptureQueriesContext(connections[backend]) as captured:
        html = listed(admin_client, parent__id__exact=parent.id)
    assert len(captured) <= 6
    assert "10000 tasks" in html
    assert len(html) < 150_000


# -- the list's filters -----------------------------------------------------------------


@pytest.mark.admin_db
def test_the_list_filters_children_top_level_tasks_and_one_parent_s_children(backend, admin_client):
    parent = submit("fan-out", {"count": 2})
    other = submit("fan-out", {"count": 1})
    run_until_idle()
    children = list(reloaded(parent).children.all())
    (cousin,) = reloaded(other).children.all()
    short = {t.id.hex[:8]: t for t in [parent, other, *children, cousin]}

    def shown(**query: object) -> set[Task]:
        return {short[found] for found in listed_ids(listed(admin_client, **query))}

    html = listed(admin_client)
    assert "?has_parent=yes" in html
    assert "?has_parent=no" in html
    assert "By children of" not in html  # shown only while it filters
    assert shown(has_parent="yes") == {*children, cousin}
    assert shown(has_parent="no") == {parent, other}
    assert shown(parent__id__exact=parent.id) == set(children)
    html = listed(admin_client, parent__id__exact=parent.id)
    assert "By children of" in html
    assert f"task {parent.id.hex[:8]}" in html  # the filter's one choice, chosen
    assert shown(parent__id__exact=parent.id, status__exact="completed") == set(children)
    assert shown(parent__id__exact=parent.id, has_parent="no") == set()
    assert shown(parent__id__exact="not-an-id") == set()


@pytest.mark.admin_db
def test_the_link_on_a_parent_s_page_lists_its_children(backend, admin_client):
    parent = submit("fan-out", {"count": 2})
    run_until_idle()
    html = page(admin_client, parent)
    link = re.search(r'<a href="([^"]*)" class="salvador-children-list">', html)
    assert link is not None
    response = admin_client.get(unescape(link.group(1)))
    assert response.status_code == 200
    for child in reloaded(parent).children.all():
        assert child.id.hex[:8] in response.content.decode()


# -- cancel and requeue -----------------------------------------------------------------


@pytest.mark.admin_db
def test_cancelling_a_parent_from_the_list_cancels_its_waiting_children(backend, admin_client):
    parent = submit("waiting-children", {"count": 2})
    run_until_idle()
    children = list(reloaded(parent).children.all())
    assert {c.status for c in children} == {TaskStatus.WAITING}
    assert act(admin_client, "cancel_action", [parent]) == "1 cancelled"
    assert status_of(parent) == TaskStatus.CANCELLED
    assert {status_of(c) for c in children} == {TaskStatus.CANCELLED}


@pytest.mark.admin_db
def test_cancelling_a_parent_from_its_page_cancels_its_children_and_theirs(backend, admin_client):
    grandparent = submit("nested-children", {})
    run_until_idle()
    (parent,) = reloaded(grandparent).children.all()
    grandchildren = list(parent.children.all())
    response = admin_client.post(triage_url(grandparent, "cancel"))
    assert response.status_code == 302
    assert {status_of(t) for t in [grandparent, parent, *grandchildren]} == {TaskStatus.CANCELLED}


@pytest.mark.admin_db
def test_a_cancelled_child_is_requeued_from_the_admin_like_any_task(backend, admin_client):
    parent = submit("leaves-children", {})
    run_until_idle()
    attached = reloaded(parent).children.get(child_key="attached")
    assert attached.status == TaskStatus.CANCELLED
    assert act(admin_client, "requeue_action", [attached]) == "1 requeued"
    assert status_of(attached) == TaskStatus.PENDING
