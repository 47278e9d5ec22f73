"""The database queue's wake-up: one waiting thread per notification, all on a broadcast."""

from __future__ import annotations

import threading
import time

from salvador_django.queues.database import WakeUp


def waiters(
    wakeup: WakeUp, count: int, timeout: float
) -> tuple[list[bool], list[threading.Thread]]:
    woken: list[bool] = []
    lock = threading.Lock()

    def wait() -> None:
        result = wakeup.wait(wakeup.broadcasts, timeout)
        with lock:
            woken.append(result)

    threads = [threading.Thread(target=wait) for _ in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while wakeup._waiting < count and time.monotonic() < deadline:
        time.sleep(0.005)
    return woken, threads


def test_a_notification_wakes_one_of_the_waiting_threads():
    wakeup = WakeUp()
    woken, threads = waiters(wakeup, 4, timeout=0.5)

    wakeup.notify()
    for thread in threads:
        thread.join()

    assert sorted(woken) == [False, False, False, True]
    assert wakeup.generation == 1


def test_a_notification_before_the_wait_is_kept_for_the_next_waiter():
    wakeup = WakeUp()
    seen = wakeup.broadcasts
    wakeup.notify()  # between a claim that found nothing and the wait

    assert wakeup.wait(seen, timeout=0.01) is True
    assert wakeup.wait(seen, timeout=0.01) is False  # taken: only one was kept


def test_notifications_nobody_waits_for_wake_one_thread_later_not_many():
    wakeup = WakeUp()
    seen = wakeup.broadcasts
    for _ in range(10):
        wakeup.notify()

    assert wakeup.wait(seen, timeout=0.01) is True
    assert wakeup.wait(seen, timeout=0.01) is False


def test_a_broadcast_wakes_every_waiting_thread():
    wakeup = WakeUp()
    woken, threads = waiters(wakeup, 3, timeout=5)

    wakeup.notify_all()
    for thread in threads:
        thread.join()

    assert woken == [True, True, True]
