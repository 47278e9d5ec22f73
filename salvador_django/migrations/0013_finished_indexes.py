"""The indexes of the hourly roll-up: tasks and step attempts by the time they ended.

Added to tables that may hold millions of rows: on PostgreSQL concurrently, so the
workers keep writing meanwhile (hence a migration outside a transaction).
"""

from django.db import migrations, models


class AddIndexConcurrentlyOnPostgreSQL(migrations.AddIndex):
    """``AddIndex``, with ``CREATE INDEX CONCURRENTLY`` on PostgreSQL."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)
        return None

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)
        return None


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("salvador", "0012_hourly_stats"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="steprun",
            index=models.Index(fields=["finished_at"], name="salvador_steprun_finished"),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="task",
            index=models.Index(
                condition=models.Q(("finished_at__isnull", False)),
                fields=["finished_at"],
                name="salvador_task_finished",
            ),
        ),
    ]
