"""What the worker logs of an exception: each message on its line, and its causes."""

from salvador_django.engine.outcome import CheckpointFailed
from salvador_django.engine.text import loggable_traceback


class DeadlockError(Exception):
    pass


def _raise_from(cause: BaseException, outer: BaseException) -> None:
    try:
        raise cause
    except BaseException as exc:
        raise outer from exc


def test_a_chained_exception_shows_its_cause_first_as_python_prints_it() -> None:
    try:
        _raise_from(DeadlockError("1213: Deadlock found"), CheckpointFailed())
    except CheckpointFailed as exc:
        logged = loggable_traceback(exc)

    cause, outer = logged.split("The above exception was the direct cause")
    assert "DeadlockError: 1213: Deadlock found" in cause
    assert "CheckpointFailed: The database failed while recording a completed step" in outer
    assert logged.count("Traceback (most recent call last):") == 2


def test_an_exception_raised_while_handling_another_shows_both() -> None:
    try:
        try:
            raise KeyError("first")
        except KeyError:
            raise ValueError("second")  # noqa: B904 - the implicit context is the test
    except ValueError as exc:
        logged = loggable_traceback(exc)

    assert "During handling of the above exception" in logged
    assert logged.index("KeyError: 'first'") < logged.index("ValueError: second")


def test_a_suppressed_context_is_not_shown() -> None:
    try:
        try:
            raise KeyError("hidden")
        except KeyError:
            raise ValueError("shown") from None
    except ValueError as exc:
        logged = loggable_traceback(exc)

    assert "hidden" not in logged
    assert logged.endswith("ValueError: shown")


def test_each_message_of_the_chain_stays_on_its_line() -> None:
    try:
        _raise_from(DeadlockError("forged\nERROR line"), CheckpointFailed("outer\r\nline"))
    except CheckpointFailed as exc:
        logged = loggable_traceback(exc)

    assert "DeadlockError: forged\\nERROR line" in logged
    assert "CheckpointFailed: outer\\r\\nline" in logged


def test_a_long_chain_is_cut_to_its_latest_exceptions() -> None:
    error: BaseException = ValueError("0")
    for n in range(1, 12):
        try:
            _raise_from(error, ValueError(str(n)))
        except ValueError as exc:
            error = exc

    logged = loggable_traceback(error)

    assert logged.count("Traceback (most recent call last):") == 5
    assert logged.endswith("ValueError: 11")
    assert "ValueError: 6\n" not in logged
