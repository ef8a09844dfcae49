"""The breaker of every Postgres and Redis connection: calls run side by side while it is
closed, and it opens, refuses and tries again as pybreaker's does."""

from __future__ import annotations

import threading
import time

import pybreaker
import pytest

from service.adapters.breaker import CircuitBreaker

WAIT = 2.0  # seconds a test waits for another thread before failing


class Outage(Exception):
    pass


class NotAnOutage(Exception):
    pass


def breaker(**options) -> CircuitBreaker:
    options = {"fail_max": 2, "reset_timeout": 60, **options}
    return CircuitBreaker(exclude=[NotAnOutage], **options)


def fail(error: BaseException):
    raise error


def ready_for_a_trial() -> CircuitBreaker:
    """A breaker that one outage opened, past its reset timeout: its next call is a trial."""
    guard = breaker(fail_max=1, reset_timeout=0.05)
    with pytest.raises(pybreaker.CircuitBreakerError):
        guard.call(fail, Outage())
    time.sleep(0.1)
    return guard


def held_then_failing() -> tuple[threading.Event, threading.Event, object]:
    """A call that says when it is inside, then waits to be released and fails with an
    Outage: (inside, release, the call)."""
    inside, release = threading.Event(), threading.Event()

    def call() -> None:
        inside.set()
        release.wait(WAIT)
        raise Outage()

    return inside, release, call


def call_in_thread(guard: CircuitBreaker, func) -> tuple[threading.Thread, list[type]]:
    """guard.call(func) in a thread of its own, started; the type of what it raised goes
    in the list."""
    raised: list[type] = []

    def run() -> None:
        try:
            guard.call(func)
        except BaseException as error:
            raised.append(type(error))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, raised


def test_a_call_runs_while_another_is_still_running():
    guard = breaker()
    first_inside, second_done = threading.Event(), threading.Event()

    def first() -> str:
        first_inside.set()
        assert second_done.wait(WAIT), "the second call waited for the first to end"
        return "first"

    found = {}
    thread = threading.Thread(target=lambda: found.setdefault("first", guard.call(first)))
    thread.start()
    assert first_inside.wait(WAIT)
    found["second"] = guard.call(lambda: "second")
    second_done.set()
    thread.join(WAIT)
    assert found == {"first": "first", "second": "second"}


def test_consecutive_failures_open_it_and_an_open_breaker_refuses_at_once():
    guard = breaker()
    with pytest.raises(Outage):
        guard.call(fail, Outage())
    with pytest.raises(pybreaker.CircuitBreakerError):  # the failure that trips it
        guard.call(fail, Outage())
    assert guard.current_state == pybreaker.STATE_OPEN
    called = []
    with pytest.raises(pybreaker.CircuitBreakerError):
        guard.call(called.append, 1)
    assert called == []


def test_a_success_ends_a_run_of_failures():
    guard = breaker()
    with pytest.raises(Outage):
        guard.call(fail, Outage())
    assert guard.call(lambda: 7) == 7
    assert guard.fail_counter == 0
    with pytest.raises(Outage):
        guard.call(fail, Outage())
    assert guard.current_state == pybreaker.STATE_CLOSED


def test_an_excluded_error_is_raised_but_not_counted():
    guard = breaker()
    with pytest.raises(Outage):
        guard.call(fail, Outage())
    for _ in range(3):
        with pytest.raises(NotAnOutage):
            guard.call(fail, NotAnOutage())
    assert guard.current_state == pybreaker.STATE_CLOSED
    assert guard.fail_counter == 0


def test_after_its_reset_timeout_a_trial_that_succeeds_closes_it():
    guard = ready_for_a_trial()
    assert guard.call(lambda: "trial") == "trial"
    assert guard.current_state == pybreaker.STATE_CLOSED


def test_after_its_reset_timeout_a_trial_that_fails_opens_it_again():
    guard = ready_for_a_trial()
    with pytest.raises(pybreaker.CircuitBreakerError):
        guard.call(fail, Outage())
    assert guard.current_state == pybreaker.STATE_OPEN


def test_a_failure_counted_while_another_call_runs_still_trips_it():
    guard = breaker()
    inside, release, slow = held_then_failing()
    thread, errors = call_in_thread(guard, slow)
    assert inside.wait(WAIT)
    with pytest.raises(Outage):
        guard.call(fail, Outage())
    release.set()
    thread.join(WAIT)
    assert errors == [pybreaker.CircuitBreakerError]
    assert guard.current_state == pybreaker.STATE_OPEN


def test_a_failure_of_a_call_begun_before_a_successful_trial_does_not_open_it_again():
    guard = breaker(fail_max=1, reset_timeout=0.05)
    inside, release, outlives_the_outage = held_then_failing()
    thread, errors = call_in_thread(guard, outlives_the_outage)
    assert inside.wait(WAIT)
    with pytest.raises(pybreaker.CircuitBreakerError):
        guard.call(fail, Outage())
    time.sleep(0.1)
    assert guard.call(lambda: "trial") == "trial"  # closed again, by the trial
    release.set()
    thread.join(WAIT)
    assert errors == [Outage]  # its own error, not counted against the new period
    assert guard.current_state == pybreaker.STATE_CLOSED


def test_calls_that_came_during_a_trial_run_side_by_side_once_it_closed_the_breaker():
    guard = ready_for_a_trial()
    trial_inside, trial_release = threading.Event(), threading.Event()
    together = threading.Barrier(2, timeout=WAIT)

    def trial() -> str:
        trial_inside.set()
        trial_release.wait(WAIT)
        return "trial"

    found = []
    threads = [threading.Thread(target=lambda: found.append(guard.call(trial)))]
    threads[0].start()
    assert trial_inside.wait(WAIT)
    for _ in range(2):  # each waits inside for the other: only possible side by side
        threads.append(threading.Thread(target=lambda: found.append(guard.call(together.wait))))
        threads[-1].start()
    time.sleep(0.05)  # both are behind the trial now
    trial_release.set()
    for thread in threads:
        thread.join(2 * WAIT)
    assert sorted(map(str, found)) == ["0", "1", "trial"]
    assert guard.current_state == pybreaker.STATE_CLOSED
