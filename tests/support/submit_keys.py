"""A process that submits one task per key, all at once with its siblings.

``python -m tests.support.submit_keys START ROUNDS PREFIX`` waits until the Unix
time ``START``, then submits ``three-steps`` with the keys ``PREFIX0`` …
``PREFIX<ROUNDS-1>``, each as soon as the last returned, and prints ``key id`` per
line (or ``key error: …``). The idempotency race tests start several at once.
"""

from __future__ import annotations

import os
import sys
import time

import django


def main(start: float, rounds: int, prefix: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from salvador_django import submit

    time.sleep(max(0.0, start - time.time()))
    for n in range(rounds):
        key = f"{prefix}{n}"
        try:
            print(key, submit("three-steps", {"n": n}, idempotency_key=key).id, flush=True)
        except Exception as exc:
            print(key, f"error: {type(exc).__name__}: {exc}", flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
