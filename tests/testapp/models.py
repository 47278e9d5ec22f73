from django.db import models


class Event(models.Model):
    """One execution of a test step, written by the step itself (outside the engine)."""

    task_id = models.UUIDField(db_index=True)
    step = models.CharField(max_length=50)
    attempt = models.PositiveIntegerField()
    pid = models.IntegerField()
    started = models.FloatField()
    finished = models.FloatField(null=True)

    class Meta:
        app_label = "testapp"
