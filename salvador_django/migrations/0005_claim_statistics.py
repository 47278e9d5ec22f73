"""PostgreSQL statistics on (status, workflow) of the task table, for the claim's plan.

The claim filters on ``status = 'pending' AND workflow IN (...)``. Planning the two
as independent, PostgreSQL multiplies their shares: with a million finished tasks
and two thousand pending ones of one workflow, it expects a handful of rows, and
it reads the triage and workflow indexes for every pending row on each claim
instead of taking the first row of ``salvador_task_due``. The claim then costs
O(pending) and a burst O(pending^2): half the steps/s at a million rows. A
most-common-values list on the pair gives the planner the true count. SQLite
needs nothing: its claim names ``salvador_task_due`` itself.
"""

from django.db import migrations

CREATE = (
    "CREATE STATISTICS IF NOT EXISTS salvador_task_status_workflow (mcv) "
    "ON status, workflow FROM salvador_task"
)
DROP = "DROP STATISTICS IF EXISTS salvador_task_status_workflow"


def create_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)
        schema_editor.execute("ANALYZE salvador_task")


def drop_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):

    dependencies = [
        ("salvador", "0004_steprun_task_index"),
    ]

    operations = [
        migrations.RunPython(create_statistics, drop_statistics),
    ]
