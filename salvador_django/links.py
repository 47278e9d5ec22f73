"""Signed links that send a signal to a task: made by ``task.signal_url()``.

A link's token holds the task, the signal's name and payload, when the link expires
and a nonce, signed with the project's ``SECRET_KEY`` (Django's signing). The nonce
becomes the signal's idempotency key, so a link delivers its signal once, however
often it is followed. The views that read links are in :mod:`salvador_django.views`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core import signing
from django.urls import reverse

from salvador_django.exceptions import PayloadError
from salvador_django.payloads import seconds_of

#: How long a link is valid by default: a week.
DEFAULT_LINK_AGE = timedelta(days=7)
#: The longest a link may be valid: a year.
MAX_LINK_AGE = timedelta(days=366)
_SALT = "salvador_django.links.signal"


class LinkError(Exception):
    """A link that cannot be used: forged, altered or expired. Its message says which."""


@dataclass(frozen=True)
class SignalLink:
    """What a valid link says: send ``name`` with ``payload`` to ``task_id``, once."""

    task_id: str
    name: str
    payload: Any
    expires_at: float  # seconds since the epoch
    nonce: str

    @property
    def idempotency_key(self) -> str:
        return f"link:{self.nonce}"


def signal_token(task_id: Any, name: str, payload: Any = None, *, expires: Any) -> str:
    """The signed token of a link sending ``name`` to ``task_id``, valid for ``expires``."""
    seconds = seconds_of(expires, "expires", most=MAX_LINK_AGE.total_seconds())
    data = {
        "t": str(task_id),
        "n": name,
        "p": payload,
        "x": round(time.time() + seconds, 3),
        "i": uuid.uuid4().hex,
    }
    try:
        return signing.dumps(data, salt=_SALT, compress=True)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"The payload is not JSON-serialisable: {exc}") from exc


def signal_path(task_id: Any, name: str, payload: Any = None, *, expires: Any) -> str:
    """The path of a link (``salvador_django.urls`` included) sending ``name`` to the task."""
    token = signal_token(task_id, name, payload, expires=expires)
    return reverse("salvador_django:signal", kwargs={"token": token})


def read_signal_token(token: str) -> SignalLink:
    """What ``token`` says; raises :class:`LinkError` if it is forged, altered or expired."""
    try:
        data = signing.loads(token, salt=_SALT)
    except signing.BadSignature as exc:
        raise LinkError("This link is not valid: it was altered or not made here.") from exc
    try:
        link = SignalLink(
            task_id=str(data["t"]),
            name=str(data["n"]),
            payload=data["p"],
            expires_at=float(data["x"]),
            nonce=str(data["i"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LinkError("This link is not valid: it was altered or not made here.") from exc
    if time.time() > link.expires_at:
        raise LinkError("This link has expired.")
    return link
