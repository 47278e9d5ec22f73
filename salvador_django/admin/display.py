"""Small pieces of HTML the task pages share: a status badge, bounded error text, JSON.

An error or a traceback can be megabytes long (rows written before the engine
bounded them). Pages show a bounded part of it: a list cell its first line, a
tooltip its beginning, the task page its first :data:`PAGE_TEXT_LENGTH` characters
and how many more there are. A list reads no more of it than it shows: its query
takes the :func:`head` of the column (a ``SUBSTR`` in SQL), read back with
:func:`head_of`; only the task's own error is read whole, on its page.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models.functions import Length, Substr
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import ngettext

ERROR_LINE_LENGTH = 100  # an error's first line, in a list's cell
ERROR_TITLE_LENGTH = 500  # an error's beginning, in a tooltip
PAGE_TEXT_LENGTH = 10_000  # an error or a traceback, on the task page
HEAD_LENGTH = 2 * ERROR_TITLE_LENGTH  # what a list reads of an error: room for what strip() drops


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


def bounded_pre(
    text: str, length: int = PAGE_TEXT_LENGTH, *, total: int | None = None
) -> SafeString:
    """``text`` in a ``<pre>``, its first ``length`` characters, then how many are not
    shown; ``total`` is the whole text's length when ``text`` is only its beginning."""
    shown = format_html('<pre class="salvador-pre">{}</pre>', text[:length])
    rest = (len(text) if total is None else total) - length
    if rest <= 0:
        return shown
    note = ngettext("… %(count)s more character", "… %(count)s more characters", rest) % {
        "count": number_format(rest, force_grouping=True)
    }
    return format_html('{}<p class="help salvador-cut">{}</p>', shown, note)


def head(column: str, length: int = HEAD_LENGTH) -> dict[str, Substr]:
    """Annotations reading the first ``length`` characters of the text ``column`` in
    SQL, and one more to tell whether it goes on (see :func:`head_of`)."""
    return {f"{column}_head": Substr(column, 1, length + 1)}


def head_and_length(column: str, length: int = PAGE_TEXT_LENGTH) -> dict[str, Any]:
    """:func:`head` and the whole text's length, for :func:`bounded_pre`'s note."""
    return {**head(column, length), f"{column}_length": Length(column)}


def head_of(row: Any, column: str, length: int = HEAD_LENGTH) -> str:
    """The text read by :func:`head`: its first ``length`` characters, and an ellipsis
    if it goes on. A row read without the annotation gives its whole text."""
    text: str | None = getattr(row, f"{column}_head", None)
    if text is None:
        return str(getattr(row, column))
    return text if len(text) <= length else text[:length] + "…"


def bounded_pre_of(row: Any, column: str) -> SafeString:
    """:func:`bounded_pre` of ``column`` read by :func:`head_and_length` (or whole)."""
    text: str | None = getattr(row, f"{column}_head", None)
    if text is None:
        return bounded_pre(getattr(row, column))
    return bounded_pre(text, total=getattr(row, f"{column}_length"))


def pretty_json(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre class="salvador-pre">{}</pre>', text)
