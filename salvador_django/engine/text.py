"""What the engine stores and logs of a step's text: errors, tracebacks, output, state.

A step can raise any message and return or leave any string. The database cannot
hold all of them: PostgreSQL refuses NUL in text and in JSON (``\\u0000``), and no
database driver encodes a lone surrogate (``"\\udc80"``) as UTF-8. Errors and
tracebacks are therefore stored cleaned (:func:`storable`: NUL becomes ``\\x00``, a
lone surrogate its backslash escape, with a note saying so) and bounded (saying
what was cut); output and state that hold such a string are refused
(:func:`unstorable` finds it in their JSON text), the same on every database, so a
workflow does not behave differently on SQLite and on PostgreSQL. What the engine
logs of such text is escaped as well (:func:`loggable`), so a message cannot forge
log lines.
"""

from __future__ import annotations

import json
import re
import traceback
from typing import Any

from salvador_django.exceptions import NotSerialisable
from salvador_django.payloads import nested_deeper

#: The longest error stored on a task and its step run, in characters (then a note).
ERROR_CHARS = 2_000
#: The longest traceback stored on a step run: its start and its end are kept.
TRACEBACK_CHARS = 50_000
REPLACED = "(characters the database cannot store were replaced)"

# A JSON escape of NUL that is one: after an even number of backslashes (none, or
# escaped backslashes), not after an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# Characters that would start, end or colour a line in a log: C0 and C1 controls,
# DEL, the Unicode line and paragraph separators; and lone surrogates, which a
# UTF-8 log stream cannot write.
_UNLOGGABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def unstorable(json_text: str) -> str | None:
    """What in ``json_text`` no database can store, if anything.

    ``json_text`` is ``json.dumps`` output with ``ensure_ascii=False``: a NUL is
    escaped (``\\u0000``), a surrogate left as it is. Finding either costs a search
    for ``\\u0000`` and, in a text that is not ASCII, its encoding to UTF-8: the value
    itself is not walked again.
    """
    if "\\u0000" in json_text and _NUL_ESCAPE.search(json_text) is not None:
        return "a NUL character (\\u0000), which PostgreSQL cannot store in JSON"
    if json_text.isascii():
        return None
    try:
        json_text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a surrogate (\\u{ord(json_text[exc.start]):04x}), which is not valid Unicode"
    return None


def storable(text: str, limit: int, *, keep_end: bool = False) -> str:
    """``text`` as the database can hold it, at most about ``limit`` characters.

    NUL becomes ``\\x00`` and a lone surrogate its escape (``\\udc80``), with a note
    at the end saying so. A longer text keeps its first ``limit`` characters, or with
    ``keep_end`` its first and last halves, and says how many were cut.
    """
    cleaned = _clean(text)
    replaced = cleaned is not text
    if len(cleaned) > limit:
        marker = f"… [{len(cleaned) - limit} characters cut]"
        if keep_end:
            head = limit // 2
            tail = cleaned[len(cleaned) - (limit - head) :]
            cleaned = f"{cleaned[:head]}\n{marker}\n{tail}"
        else:
            cleaned = cleaned[:limit] + marker
    if not replaced:
        return cleaned
    if keep_end:
        newline = "" if cleaned.endswith("\n") else "\n"
        return f"{cleaned}{newline}{REPLACED}\n"
    return f"{cleaned} {REPLACED}"


def loggable(text: str) -> str:
    """``text`` with what could break a log line escaped as ``repr`` would (``\\n``)."""
    if _UNLOGGABLE.search(text) is None:
        return text
    return _UNLOGGABLE.sub(lambda match: repr(match.group())[1:-1], text)


#: How many exceptions of a chain (``raise ... from``) a logged traceback shows.
_CHAIN = 5
_CAUSED = "\nThe above exception was the direct cause of the following exception:\n\n"
_DURING = "\nDuring handling of the above exception, another exception occurred:\n\n"


def loggable_traceback(exc: BaseException) -> str:
    """Where ``exc`` was raised, and what it was raised from, as Python prints them:
    each message made :func:`loggable` (``CheckpointFailed`` says little without the
    database error it came from)."""
    chain: list[tuple[BaseException, str]] = [(exc, "")]
    while len(chain) < _CHAIN:
        current = chain[-1][0]
        if current.__cause__ is not None:
            chain.append((current.__cause__, _CAUSED))
        elif current.__context__ is not None and not current.__suppress_context__:
            chain.append((current.__context__, _DURING))
        else:
            break
    parts = []
    for error, link in reversed(chain):  # the first cause first, as Python prints it
        frames = "".join(traceback.format_tb(error.__traceback__))
        message = str(error)
        last = f"{type(error).__name__}: {message}" if message else type(error).__name__
        parts.append(f"Traceback (most recent call last):\n{frames}{loggable(last)}\n{link}")
    return "".join(parts).rstrip("\n")


def _clean(text: str) -> str:
    """``text`` without NUL and lone surrogates (escaped); ``text`` itself if it had none."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Every surrogate: a Python string holding a pair's halves is not UTF-8 either.
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text


#: One encoder for every checkpoint (``json.dumps`` with options builds one per call).
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def encode(value: Any, what: str, depth: int | None = None) -> str:
    """``value`` as JSON text; raises ``NotSerialisable`` naming ``what`` if it is not JSON.

    Or if it holds a string no database can store: a NUL character, or a surrogate;
    or, with ``depth`` (the database's limit: :func:`salvador_django.dialect.stored_json_depth`),
    if it nests deeper. Those are found in the JSON text itself: the value is walked
    once, by ``json.dumps``. Non-ASCII characters are left as they are (not ``\\u``
    escapes): shorter, quicker to write and to search.
    """
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise NotSerialisable(f"{what} is not JSON-serialisable: {exc}") from exc
    problem = unstorable(text)
    if problem is not None:
        raise NotSerialisable(f"{what} cannot be stored: a string in it holds {problem}")
    if depth is not None and nested_deeper(text.encode("utf-8"), depth):
        raise NotSerialisable(
            f"{what} cannot be stored: it nests deeper than the {depth} levels the database "
            "stores (MariaDB's JSON_VALID)"
        )
    return text
