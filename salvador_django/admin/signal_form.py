"""The task page's Send signal form: a signal's name and its JSON payload, checked.

The form checks what :meth:`Task.signal` checks (the name, the payload's JSON and
size), so a mistake shows beside its field and nothing is sent. Each form carries an
idempotency key of its own: posted twice, it sends its signal once.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from salvador_django.conf import get_settings
from salvador_django.exceptions import PayloadError
from salvador_django.models import SIGNAL_NAME_MAX_LENGTH, Task, check_name
from salvador_django.payloads import check_json
from salvador_django.status import FINISHED

KEY_PREFIX = "admin:"


def may_be_signalled(task: Task) -> bool:
    """Whether ``task`` takes signals: until it finishes (the model refuses them after)."""
    return task.status not in FINISHED


class SignalForm(forms.Form):
    name = forms.CharField(
        label=_("Signal name"),
        max_length=SIGNAL_NAME_MAX_LENGTH,
        help_text=_("The name a step waits for with task.wait_for(name)."),
    )
    payload = forms.CharField(
        label=_("Payload (JSON)"),
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60, "spellcheck": "false"}),
        help_text=_('Any JSON value: {"approved": true}, "yes", 42. Empty sends null.'),
    )
    idempotency_key = forms.RegexField(
        regex=rf"\A{KEY_PREFIX}[0-9a-f]{{32}}\Z", widget=forms.HiddenInput
    )

    @staticmethod
    def initial_for(task: Task) -> dict[str, str]:
        """A new form's values: the name the task waits for, and a key of its own."""
        return {"name": task.waiting_for, "idempotency_key": f"{KEY_PREFIX}{uuid.uuid4().hex}"}

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        try:
            check_name(name, gettext("The signal's name"), SIGNAL_NAME_MAX_LENGTH)
        except PayloadError as exc:
            raise ValidationError(str(exc)) from exc
        return name

    def clean_payload(self) -> Any:
        text: str = self.cleaned_data["payload"]
        if not text.strip():
            return None
        try:
            payload = json.loads(text)
        except RecursionError as exc:
            raise ValidationError(gettext("The payload is nested too deep.")) from exc
        except ValueError as exc:
            raise ValidationError(gettext("Not valid JSON: %(error)s") % {"error": exc}) from exc
        try:
            check_json(payload, get_settings().MAX_BODY_BYTES, gettext("The payload"))
        except PayloadError as exc:
            raise ValidationError(str(exc)) from exc
        return payload

    def signal(self) -> tuple[str, Any, str]:
        """The valid form's name, payload and idempotency key."""
        data = self.cleaned_data
        return data["name"], data["payload"], data["idempotency_key"]
