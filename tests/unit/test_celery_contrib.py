"""The Celery integration's pure parts."""

from salvador_django.contrib.celery import message_priority


def test_celery_message_priorities_keep_higher_first_on_each_broker():
    assert [message_priority(p) for p in (-9, -1, 0, 1, 9)] == [0, 3, 4, 5, 9]
    redis = [message_priority(p, lowest_first=True) for p in (-9, -1, 0, 1, 9)]
    assert redis == [9, 6, 5, 4, 0]  # Celery's Redis transport serves 0 first
