"""The page behind a signed signal link: a GET asks to confirm, a POST sends the signal.

Included with ``path("salvador/", include("salvador_django.urls"))``; the links are made
by ``task.signal_url()`` (:mod:`salvador_django.links`). The token is the capability:
whoever holds an unexpired link may send its one signal, once (the link's nonce is
the signal's idempotency key). A GET never sends: mail scanners open links.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from salvador_django.conf import get_settings
from salvador_django.exceptions import InvalidTransition, PayloadError
from salvador_django.links import LinkError, SignalLink, read_signal_token
from salvador_django.models import Signal, Task
from salvador_django.status import FINISHED
from salvador_django.submission import get_task


class _Refused(Exception):
    """Why a link's request changes nothing, and the HTTP status that says so."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def signal_link(request: HttpRequest, token: str) -> HttpResponse:
    """Confirm and send a link's signal: a page for people, JSON for machines.

    CSRF: a machine's POST (``Content-Type: application/json``, a payment provider's
    callback) cannot carry a CSRF token, and needs none: it acts through the signed
    token in its URL, not through a session or cookie of the caller. A browser cannot
    send that content type across sites without a CORS preflight, which this view
    refuses (405). Every other request goes to :func:`_page`, which keeps Django's CSRF
    protection: the exemption covers the JSON requests only.
    """
    if request.method == "POST" and request.content_type == "application/json":
        return _machine_post(request, token)
    return _page(request, token)


@csrf_protect
def _page(request: HttpRequest, token: str) -> HttpResponse:
    """GET: what the link will send, and one button; POST (that button): send it."""
    try:
        link, task = _read_link(token)
        if request.method == "GET":
            return _confirmation(request, link, task)
        delivered = _send(link, task, link.payload)
    except _Refused as refused:
        context = {"message": refused.message, "status": refused.status}
        return render(request, "salvador_django/link_error.html", context, status=refused.status)
    context = {"task": task, "name": link.name, "delivered": delivered}
    return render(request, "salvador_django/link_done.html", context)


def _confirmation(request: HttpRequest, link: SignalLink, task: Task) -> HttpResponse:
    if _used(link, task):
        context = {"task": task, "name": link.name, "delivered": False}
        return render(request, "salvador_django/link_done.html", context)
    if task.status in FINISHED:
        raise _Refused(410, _finished(task.status))
    payload = link.payload
    pretty = None if payload is None else json.dumps(payload, indent=2, ensure_ascii=False)
    context = {"task": task, "name": link.name, "payload": pretty}
    return render(request, "salvador_django/link_confirm.html", context)


def _machine_post(request: HttpRequest, token: str) -> JsonResponse:
    """Send the link's signal; the JSON body is its payload when the link carries none.

    A link made with a payload sends that payload whatever the body holds: what was
    signed is never replaced. The body must be empty or JSON all the same.
    """
    try:
        link, task = _read_link(token)
        body = _json_body(request)
        delivered = _send(link, task, body if link.payload is None else link.payload)
    except _Refused as refused:
        return JsonResponse({"error": refused.message}, status=refused.status)
    return JsonResponse({"delivered": delivered, "task": str(task.id), "signal": link.name})


def _read_link(token: str) -> tuple[SignalLink, Task]:
    try:
        link = read_signal_token(token)
    except LinkError as exc:
        raise _Refused(400, str(exc)) from exc
    try:
        task = get_task(link.task_id)
    except Task.DoesNotExist as exc:
        raise _Refused(404, "The task of this link does not exist (any more).") from exc
    return link, task


def _used(link: SignalLink, task: Task) -> bool:
    """Whether the link's signal was sent already (its idempotency key is stored)."""
    signals = Signal.objects.using(task._state.db)
    return signals.filter(task_id=task.id, idempotency_key=link.idempotency_key).exists()


def _send(link: SignalLink, task: Task, payload: Any) -> bool:
    """Send the link's signal unless it was sent before; whether it was sent now.

    The idempotency key decides, under the task's row lock: of two requests racing
    with one link, one stores the signal and the other is told it was used.
    """
    if _used(link, task):
        return False
    try:
        signal = task.signal(link.name, payload, idempotency_key=link.idempotency_key)
    except InvalidTransition as exc:
        raise _Refused(410, _finished(exc.status or task.status)) from exc
    except PayloadError as exc:
        raise _Refused(400, str(exc)) from exc
    return signal.created


def _finished(status: str) -> str:
    return f"This task has finished ({status}): the link can no longer send it anything."


def _json_body(request: HttpRequest) -> Any:
    """The request's JSON body (None when empty); :class:`_Refused` if too large or not JSON."""
    limit = get_settings().MAX_BODY_BYTES
    too_large = _Refused(400, f"The body is larger than MAX_BODY_BYTES ({limit} bytes).")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:  # refused before it is read
        raise too_large
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise too_large from exc
    if len(body) > limit:
        raise too_large
    if not body.strip():
        return None
    try:
        return json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        raise _Refused(400, f"The body is not JSON: {exc}") from exc


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")
