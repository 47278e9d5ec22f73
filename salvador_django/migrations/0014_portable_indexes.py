"""Partial indexes and unique constraints that MySQL and MariaDB keep too.

Django skipped the conditional unique constraints there (so an idempotency key did not
hold), skipped the due index (an index on expressions) and made the other partial
indexes full ones of the same columns. The state now holds ``PartialIndex`` and
``PartialUniqueConstraint`` (``salvador_django/models/indexes.py``): on PostgreSQL and
SQLite they are the indexes already there, so nothing is written; on MySQL and
MariaDB this builds their full forms.
"""

from typing import Any

from django.db import migrations, models

from salvador_django.models.indexes import PartialIndex, PartialUniqueConstraint

PENDING, RUNNING, WAITING, FAILED, COMPLETED = (
    "pending",
    "running",
    "waiting",
    "failed",
    "completed",
)

INDEXES = [
    (
        "task",
        PartialIndex(
            fields=["-priority", "run_after"],
            name="salvador_task_due",
            where=models.Q(status=PENDING),
            full_fields=["status", "-priority", "run_after"],
        ),
    ),
    (
        "task",
        PartialIndex(
            fields=["lease_expires_at"],
            name="salvador_task_lease",
            where=models.Q(status=RUNNING),
            full_fields=["status", "lease_expires_at"],
        ),
    ),
    (
        "task",
        PartialIndex(
            fields=["status", "-created_at"],
            name="salvador_task_triage",
            where=~models.Q(status=COMPLETED),
            full_fields=["status", "-created_at"],
        ),
    ),
    (
        "task",
        PartialIndex(
            fields=["failed_step", "-finished_at"],
            name="salvador_task_failed_step",
            where=models.Q(status=FAILED),
            full_fields=["status", "failed_step", "-finished_at"],
        ),
    ),
    (
        "task",
        PartialIndex(
            fields=["-finished_at"],
            name="salvador_task_failures",
            where=models.Q(status=FAILED),
            full_fields=["status", "-finished_at"],
        ),
    ),
    (
        "task",
        PartialIndex(
            fields=["finished_at"],
            name="salvador_task_finished",
            where=models.Q(finished_at__isnull=False),
            full_fields=["finished_at"],
        ),
    ),
    (
        "task",
        PartialIndex(
            fields=["wake_at"],
            name="salvador_task_timers",
            where=models.Q(status=WAITING),
            full_fields=["status", "wake_at"],
        ),
    ),
    (
        "schedule",
        PartialIndex(
            fields=["next_run_at"],
            name="salvador_schedule_due",
            where=models.Q(active=True, paused=False),
            full_fields=["active", "paused", "next_run_at"],
        ),
    ),
    (
        "signal",
        PartialIndex(
            fields=["task", "name", "id"],
            name="salvador_signal_undelivered",
            where=models.Q(consumed_at__isnull=True),
            full_fields=["task", "name", "consumed_at", "id"],
        ),
    ),
]

CONSTRAINTS = [
    (
        "task",
        PartialUniqueConstraint(
            fields=["idempotency_key", "workflow"],
            where=models.Q(idempotency_key__isnull=False),
            name="salvador_task_idempotency_key",
        ),
    ),
    (
        "task",
        PartialUniqueConstraint(
            fields=["parent", "parent_step", "child_key"],
            where=models.Q(parent__isnull=False),
            name="salvador_task_child_key",
        ),
    ),
    (
        "signal",
        PartialUniqueConstraint(
            fields=["task", "idempotency_key"],
            where=models.Q(idempotency_key__isnull=False),
            name="salvador_signal_idempotency_key",
        ),
    ),
]


class BuildFullForms(migrations.operations.base.Operation):
    """On a database without partial indexes, replace what Django made of the old ones."""

    reduces_to_sql = True
    reversible = True

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass  # the state moves in the state operations beside this one

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not schema_editor.connection.features.supports_partial_indexes:
            indexes = [(model_name, index.name, index) for model_name, index in INDEXES]
            self._replace(app_label, schema_editor, to_state, indexes, with_constraints=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not schema_editor.connection.features.supports_partial_indexes:
            # What Django had made of the old ones: each index without its condition,
            # none of the one on expressions (the due index), no conditional constraint.
            indexes = [
                (model_name, index.name, _old_form(index)) for model_name, index in INDEXES
            ]
            self._replace(app_label, schema_editor, to_state, indexes, with_constraints=False)

    def _replace(self, app_label, schema_editor, state, indexes, *, with_constraints):
        connection = schema_editor.connection
        quote = schema_editor.quote_name
        for model_name, name, target in indexes:
            model = state.apps.get_model(app_label, model_name)
            table = quote(model._meta.db_table)
            present = name in _names(connection, model._meta.db_table)
            kept = quote(f"{name}_was")
            if present:
                # Renamed, not dropped, until its successor exists: an index that
                # serves a foreign key (the signal's task) cannot be dropped first.
                schema_editor.execute(f"ALTER TABLE {table} RENAME INDEX {quote(name)} TO {kept}")
            if target is not None:
                schema_editor.add_index(model, target)
            if present:
                schema_editor.execute(f"ALTER TABLE {table} DROP INDEX {kept}")
        for model_name, constraint in CONSTRAINTS:
            model = state.apps.get_model(app_label, model_name)
            present = constraint.name in _names(connection, model._meta.db_table)
            if present and not with_constraints:
                schema_editor.remove_constraint(model, constraint)
            elif not present and with_constraints:
                _refuse_duplicates(connection, model, constraint)
                schema_editor.add_constraint(model, constraint)

    def describe(self) -> str:
        return "Build the full forms of the partial indexes on MySQL and MariaDB"


def _old_form(index: PartialIndex) -> models.Index | None:
    if index.name == "salvador_task_due":
        return None
    return models.Index(fields=index.fields, name=index.name)


def _names(connection: Any, table: str) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, table))


def _refuse_duplicates(connection: Any, model: Any, constraint: Any) -> None:
    """Stop, saying what to fix, where rows made before the constraint already repeat it."""
    columns = [model._meta.get_field(name).column for name in constraint.fields]
    quote = connection.ops.quote_name
    listed = ", ".join(quote(column) for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {listed}, COUNT(*) FROM {quote(model._meta.db_table)} "
            f"WHERE {quote(columns[0])} IS NOT NULL GROUP BY {listed} HAVING COUNT(*) > 1 LIMIT 5"
        )
        repeated = cursor.fetchall()
    if repeated:
        raise RuntimeError(
            f"{model._meta.db_table} holds rows that repeat ({', '.join(columns)}), which "
            f"{constraint.name} makes unique (made before this migration, when MySQL/MariaDB "
            f"had no such constraint), for example {[row[:-1] for row in repeated]}. Keep one "
            "row of each (or clear the repeated key) and run migrate again."
        )


def _state_operations() -> list[Any]:
    operations: list[Any] = []
    for model_name, index in INDEXES:
        operations.append(migrations.RemoveIndex(model_name=model_name, name=index.name))
        operations.append(migrations.AddIndex(model_name=model_name, index=index))
    for model_name, constraint in CONSTRAINTS:
        operations.append(migrations.RemoveConstraint(model_name=model_name, name=constraint.name))
        operations.append(migrations.AddConstraint(model_name=model_name, constraint=constraint))
    return operations


class Migration(migrations.Migration):
    dependencies = [
        ("salvador", "0013_finished_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=_state_operations(),
            database_operations=[BuildFullForms()],
        ),
    ]
