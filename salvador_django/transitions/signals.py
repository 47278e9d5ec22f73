"""The state machine's hooks: who is told, inside the transaction of a move."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent inside the transaction of a move that made ``tasks`` due (or that created
#: them; ``scheduled=True``: due at their ``run_after``); the queues announce them when
#: it commits (a hook, so that the models and the engine need not know queues).
tasks_due = Signal()

#: Sent inside the transaction in which the tasks ``ids`` (on ``database``) ended and
#: may have unfinished children: the receiver cancels those that are not detached.
parents_ended = Signal()
