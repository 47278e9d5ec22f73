"""Append-only logs outside every database, which the run's steps write to.

A line is appended with one ``write`` to a file opened with ``O_APPEND``: it is
there even when its process dies a moment later, and lines of concurrent writers
(threads and processes) do not mix.
"""

from __future__ import annotations

import json
import os
import threading

_files: dict[str, int] = {}
_lock = threading.Lock()


def append(variable: str, line: dict[str, object]) -> None:
    """Append ``line`` as JSON to the file the environment variable ``variable`` names."""
    path = os.environ[variable]
    with _lock:
        if path not in _files:
            _files[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        fd = _files[path]
    os.write(fd, (json.dumps(line) + "\n").encode())
