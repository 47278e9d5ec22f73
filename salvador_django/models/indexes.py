"""Partial indexes and unique constraints in a form every supported database keeps.

PostgreSQL and SQLite index only the rows a query reads (``WHERE status =
'pending'``); MySQL and MariaDB have no partial indexes, and Django silently skips a
conditional unique constraint there (``models.W036``) and drops an index's condition
(``models.W037``). These classes build the partial form where the database has it
and a full form that serves the same queries where it has not: an index led by the
condition's columns, a unique constraint over every row (a NULL key never
conflicts, so uniqueness means the same there). They declare no ``condition`` to
Django, so ``migrate`` warns of nothing it would drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import models


class PartialIndex(models.Index):
    """An index of the rows matching ``where``; on MySQL/MariaDB, of ``full_fields``.

    ``full_fields`` lead with the condition's columns, so that the same queries
    find their rows by the index where it covers the whole table.
    """

    def __init__(
        self,
        *,
        fields: Sequence[str],
        name: str,
        where: models.Q,
        full_fields: Sequence[str],
    ) -> None:
        super().__init__(fields=list(fields), name=name)
        self.where = where
        self.full_fields = list(full_fields)

    def form(self, connection: Any) -> models.Index:
        """The plain Django index this one is on ``connection``."""
        if connection.features.supports_partial_indexes:
            return models.Index(fields=self.fields, name=self.name, condition=self.where)
        return models.Index(fields=self.full_fields, name=self.name)

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        return self.form(schema_editor.connection).create_sql(model, schema_editor, using, **kwargs)

    def remove_sql(self, model: Any, schema_editor: Any, **kwargs: Any) -> Any:
        return self.form(schema_editor.connection).remove_sql(model, schema_editor, **kwargs)

    def deconstruct(self) -> Any:
        path, args, kwargs = super().deconstruct()
        return path, args, {**kwargs, "where": self.where, "full_fields": self.full_fields}

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: fields={self.fields!r} where={self.where!r}>"


class PartialUniqueConstraint(models.UniqueConstraint):
    """Unique ``fields`` among the rows matching ``where``; on MySQL/MariaDB, among all rows.

    Only for a ``where`` that excludes the rows with a NULL in ``fields``: NULLs never
    conflict in a unique index, so the full constraint allows exactly what the
    partial one does.
    """

    def __init__(self, *, fields: Sequence[str], name: str, where: models.Q) -> None:
        super().__init__(fields=list(fields), name=name)
        self.where = where

    def form(self, connection: Any) -> models.UniqueConstraint:
        """The plain Django constraint this one is on ``connection``."""
        if connection.features.supports_partial_indexes:
            return models.UniqueConstraint(fields=self.fields, name=self.name, condition=self.where)
        return models.UniqueConstraint(fields=self.fields, name=self.name)

    def constraint_sql(self, model: Any, schema_editor: Any) -> Any:
        return self.form(schema_editor.connection).constraint_sql(model, schema_editor)

    def create_sql(self, model: Any, schema_editor: Any) -> Any:
        return self.form(schema_editor.connection).create_sql(model, schema_editor)

    def remove_sql(self, model: Any, schema_editor: Any) -> Any:
        return self.form(schema_editor.connection).remove_sql(model, schema_editor)

    def deconstruct(self) -> Any:
        path, args, kwargs = super().deconstruct()
        return path, args, {**kwargs, "where": self.where}

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: fields={self.fields!r} where={self.where!r}>"
