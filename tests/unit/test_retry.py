import pytest

from salvador_django import Retry


def test_delay_grows_exponentially_and_is_capped():
    retry = Retry(max_attempts=10, backoff=2, initial_delay=1, max_delay=5, jitter=False)
    assert [retry.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_jitter_draws_from_the_upper_half_of_the_wait():
    retry = Retry(backoff=3, initial_delay=2, jitter=True)
    delays = [retry.delay(2) for _ in range(200)]
    assert all(3 <= d <= 6 for d in delays)
    assert len(set(delays)) > 1


def test_should_retry_counts_the_first_try_and_filters_exceptions():
    retry = Retry(max_attempts=3, retry_on=(ConnectionError,))
    assert retry.should_retry(ConnectionError(), 1)
    assert retry.should_retry(ConnectionError(), 2)
    assert not retry.should_retry(ConnectionError(), 3)
    assert not retry.should_retry(ValueError(), 1)


def test_single_exception_class_is_accepted_for_retry_on():
    assert Retry(retry_on=KeyError).retry_on == (KeyError,)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 1.5},
        {"backoff": 0.5},
        {"initial_delay": -1},
        {"retry_on": (int,)},
    ],
)
def test_invalid_policies_are_rejected(kwargs):
    with pytest.raises((ValueError, TypeError)):
        Retry(**kwargs)
