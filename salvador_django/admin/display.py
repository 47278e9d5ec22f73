"""Small pieces of HTML the task pages share: a status badge, bounded error text, JSON.

An error or a traceback can be megabytes long. Pages show a bounded part of it: a
list cell its first line, a tooltip its beginning, the task page its first
:data:`PAGE_TEXT_LENGTH` characters and how many more there are.
"""

from __future__ import annotations

import json
from typing import Any

from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import ngettext

ERROR_LINE_LENGTH = 100  # an error's first line, in a list's cell
ERROR_TITLE_LENGTH = 500  # an error's beginning, in a tooltip
PAGE_TEXT_LENGTH = 10_000  # an error or a traceback, on the task page


def status_badge(status: str, label: Any) -> SafeString:
    return format_html('<span class="salvador-badge salvador-{}">{}</span>', status, label)


def shorten(text: str, length: int) -> str:
    """``text``, or its first ``length - 1`` characters and an ellipsis."""
    return text if len(text) <= length else text[: length - 1] + "…"


def first_line(text: str, length: int = ERROR_LINE_LENGTH) -> str:
    """The first line of ``text``, at most ``length`` characters."""
    head = text.lstrip()[: length + 1]  # all of the line that can be shown, and one more
    return shorten(head.split("\n", 1)[0].rstrip(), length)


def beginning(text: str, length: int = ERROR_TITLE_LENGTH) -> str:
    """The first lines of ``text``, at most ``length`` characters."""
    return shorten(text.strip(), length)


def bounded_pre(text: str, length: int = PAGE_TEXT_LENGTH) -> SafeString:
    """``text`` in a ``<pre>``, its first ``length`` characters, then how many are not shown."""
    shown = format_html('<pre class="salvador-pre">{}</pre>', text[:length])
    rest = len(text) - length
    if rest <= 0:
        return shown
    note = ngettext("… %(count)s more character", "… %(count)s more characters", rest) % {
        "count": number_format(rest, force_grouping=True)
    }
    return format_html('{}<p class="help salvador-cut">{}</p>', shown, note)


def pretty_json(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre class="salvador-pre">{}</pre>', text)
