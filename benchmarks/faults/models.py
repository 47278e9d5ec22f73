"""The run's own record of step effects, outside the engine's tables."""

from typing import ClassVar

from django.db import models


class Effect(models.Model):
    """One committed step effect, written in the step's own transaction (an atomic step).

    A worker that lost its lease has its checkpoint refused, and with it this row:
    so each step of each task should have exactly one, by the claim that held it.
    """

    task_id = models.UUIDField()
    step = models.PositiveSmallIntegerField()
    token = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    at = models.FloatField(help_text="time.time() when the step wrote it")

    class Meta:
        indexes: ClassVar = [models.Index(fields=["task_id", "step"], name="chaos_effect_task")]

    def __str__(self) -> str:
        return f"{self.task_id} step {self.step} by {self.token}"


class Received(models.Model):
    """What one wait for a signal of the waiting workflow returned, as its step saw it.

    Written with the step's checkpoint (its steps are atomic): one row per wait of each
    completed step, whatever the number of times the step ran.
    """

    task_id = models.UUIDField()
    step = models.CharField(max_length=200)
    position = models.PositiveSmallIntegerField(help_text="the wait's position in its step")
    name = models.CharField(max_length=200)
    payload = models.JSONField(null=True)

    class Meta:
        indexes: ClassVar = [models.Index(fields=["task_id"], name="chaos_received_task")]

    def __str__(self) -> str:
        return f"{self.task_id} {self.step}#{self.position}: {self.name}"
