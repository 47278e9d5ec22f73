"""Times on the database's clock: leases, delays and due times never use a worker's clock."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models.functions import Now


def now_plus(seconds: float) -> models.Expression:
    """The database's clock plus ``seconds``."""
    return models.ExpressionWrapper(
        Now() + models.Value(timedelta(seconds=seconds), output_field=models.DurationField()),
        output_field=models.DateTimeField(),
    )
