"""The circuit breaker of every connection to Postgres and Redis: pybreaker's, except that
calls run side by side while it is closed.

pybreaker holds the breaker's lock for the whole of each call it guards, so the threads of
a worker would take turns at Postgres (or at one Redis): a slow SQL read would hold up
every other request's key check. Here a closed breaker's call runs outside the lock, and
only its outcome is counted under it, by pybreaker's own rules (excluded errors, the
failure that trips it). Open, it refuses at once as before; half-open, its one trial runs
under the lock as pybreaker runs it, and the calls that came meanwhile wait for the
trial's verdict, then run side by side if it closed the breaker.

An outcome counts only in the closed period its call began in: pybreaker makes a new
state object at every change, so a call that outlived a trip and a successful trial (a
statement timeout is longer than Postgres' reset timeout) cannot open the breaker again.
Listeners hear state changes as ever; none here listens for calls or successes, which
this path does not report.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import pybreaker

T = TypeVar("T")


class CircuitBreaker(pybreaker.CircuitBreaker):
    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.current_state != pybreaker.STATE_CLOSED:
            with self._lock:
                if self.current_state != pybreaker.STATE_CLOSED:  # pybreaker's own rules
                    return super().call(func, *args, **kwargs)
        period = self._state
        try:
            found = func(*args, **kwargs)
        except BaseException as error:
            # Counted (and raised, or the trip raised instead) in its own period only.
            self._count(period, partial(period._handle_error, error))
            raise
        if self.fail_counter:  # a success ends a run of failures
            self._count(period, period._handle_success)
        return found

    def _count(self, period: Any, outcome: Callable[[], None]) -> None:
        with self._lock:
            if self._state is period:
                outcome()
