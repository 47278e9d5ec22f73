"""Workflows that only the admin benchmark's seeded tasks name; they are never run.

Imported by ``benchmarks.admin_urls``, so only the admin benchmark registers them
(``benchmarks.workflows``, found by autodiscovery, adds ``bench``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from salvador_django import Workflow

if TYPE_CHECKING:
    from salvador_django.models import Task


def noop(task: Task) -> None:
    """Do nothing: the admin benchmark lists these tasks, it never runs them."""


def workflow(name: str, *steps: str) -> Workflow:
    """A workflow of no-op steps named ``steps``."""
    flow = Workflow(name)
    for step in steps:
        flow.step(step, noop)
    return flow


charge_card = workflow("charge-card", "reserve", "charge", "receipt")
send_invoice = workflow("send-invoice", "render", "email")
sync_crm = workflow("sync-crm", "fetch", "transform", "push", "confirm")
