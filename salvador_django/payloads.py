"""Checks of what users hand us to store: JSON values and text a database can hold.

A body, a signal's payload, an event's value: each must be JSON, within
``MAX_BODY_BYTES``, nested no deeper than :data:`MAX_BODY_DEPTH`, and free of text
that no database stores (a NUL character, a lone surrogate).
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.db import connections

from salvador_django import dialect
from salvador_django.conf import get_settings
from salvador_django.exceptions import PayloadError

#: The deepest a body may nest lists and dicts (``[[1]]`` is 2 levels). Deeper, a
#: step, a page or another JSON parser would soon fail to read it. MariaDB stores
#: no deeper than :data:`~salvador_django.dialect.MARIADB_JSON_DEPTH`: there, that is the limit.
MAX_BODY_DEPTH = 100


def max_depth() -> int:
    """How deep a value may nest in the tasks' database (``SALVADOR["DATABASE"]``)."""
    return dialect.json_depth_limit(connections[get_settings().DATABASE], MAX_BODY_DEPTH)


_NUL = "a NUL character ('\\x00')", "PostgreSQL cannot store it in text or JSON"


def check_json(value: Any, limit: int, what: str = "The body") -> None:
    """Refuse a ``value`` that is not JSON, too large, too deep, or holds text no database can.

    ``what`` names it in the messages ("The body", "The payload"); ``limit`` is the
    most bytes its compact JSON may take.

    One ``json.dumps`` does most of the work; the checks after it scan its text (in C)
    and walk the body itself only when the text shows a problem.
    """
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what} is not JSON-serialisable: {exc}") from exc
    except RecursionError as exc:
        raise PayloadError(_too_deep(what)) from exc
    try:
        data = encoded.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: find it and say where
        _check_text(value, what)
        found, why = _surrogate(exc)
        raise PayloadError(f"{what} has {found}: {why}.") from exc
    # json writes a NUL as \u0000; a backslash followed by "u0000" matches too, so look.
    if b"\\u0000" in data:
        _check_text(value, what)
    if len(data) > limit:
        raise PayloadError(f"{what} is {len(data)} bytes serialised; MAX_BODY_BYTES is {limit}.")
    depth = max_depth()
    if nested_deeper(data, depth):
        raise PayloadError(_too_deep(what, depth))


def _too_deep(what: str, depth: int | None = None) -> str:
    depth = max_depth() if depth is None else depth
    return f"{what} is nested deeper than the maximum of {depth} levels."


# Keep quotes and brackets (as parentheses); drop every other byte.
_PAIRS = bytes.maketrans(b"[{]}", b"(())")
_NOT_KEPT = bytes(sorted(set(range(256)) - set(b'"[]{}')))


def nested_deeper(data: bytes, limit: int) -> bool:
    """Whether the compact JSON ``data`` nests lists and dicts more than ``limit`` deep.

    A few passes of C over the bytes: no Python loop over the body's values.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # fewer brackets than levels, even counting those inside strings
    if b"\\" in data:  # drop escaped backslashes, then escaped quotes: only quotes are left
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = data.translate(_PAIRS, _NOT_KEPT)
    brackets = kept.replace(b'""', b"")  # the strings, when none of them holds a bracket
    if b'"' in brackets:  # one does: cut out every string
        brackets = b"".join(kept.split(b'"')[::2])
    for _ in range(limit + 1):
        if not brackets:
            return False
        brackets = brackets.replace(b"()", b"")  # every innermost pair: one level less
    return True


def _check_text(value: Any, what: str) -> None:
    """Raise for the first key or string of ``value`` that no database can store."""
    for where, text in _texts(value, what.split()[-1].lower()):
        problem = text_problem(text)
        if problem is not None:
            found, why = problem
            raise PayloadError(f"{what} has {found} at {where}: {why}.")


def _texts(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string of a JSON-serialisable ``value``, keys included, with where it is."""
    stack = [(value, where)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            yield where, value
        elif isinstance(value, dict):
            items = []
            for key, item in value.items():
                path = f"{where}[{reprlib.repr(key)}]"
                if isinstance(key, str):
                    yield f"{path} (a key)", key
                items.append((item, path))
            stack.extend(reversed(items))
        elif isinstance(value, list | tuple):
            stack.extend(reversed([(item, f"{where}[{i}]") for i, item in enumerate(value)]))


def text_problem(text: str) -> tuple[str, str] | None:
    """What in ``text`` a database cannot store, and why; None when there is nothing."""
    if "\x00" in text:
        return _NUL
    if text.isascii():  # the common case, answered without encoding
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return _surrogate(exc)
    return None


def _surrogate(exc: UnicodeEncodeError) -> tuple[str, str]:
    char = exc.object[exc.start]
    return f"a lone surrogate ({char!r})", "it cannot be encoded as UTF-8"


def seconds_of(value: Any, what: str, *, most: float, zero: bool = False) -> float:
    """``value`` (a number of seconds or a ``timedelta``) as seconds.

    Refused with :class:`PayloadError` naming ``what`` unless it is finite, positive
    (or zero, with ``zero``) and at most ``most`` seconds; a ``bool`` is no number.
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    is_number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    if not (is_number and math.isfinite(seconds) and (0 if zero else 1e-9) <= seconds <= most):
        sign = "non-negative" if zero else "positive"
        raise PayloadError(
            f"{what} must be a {sign} number of seconds or a timedelta, at most {most:g} "
            f"seconds, not {value!r}."
        )
    return float(seconds)
