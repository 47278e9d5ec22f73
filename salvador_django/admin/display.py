"""Small pieces of HTML the task pages share: a status badge, an error's first line, JSON."""

from __future__ import annotations

import json
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString

ERROR_LINE_LENGTH = 100


def status_badge(status: str, label: Any) -> SafeString:
    return format_html('<span class="salvador-badge salvador-{}">{}</span>', status, label)


def first_line(text: str, length: int = ERROR_LINE_LENGTH) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= length else line[: length - 1] + "…"


def pretty_json(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre class="salvador-pre">{}</pre>', text)
