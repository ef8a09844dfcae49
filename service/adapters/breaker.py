"""The circuit breaker of every connection to Postgres and Redis: pybreaker's, except that
calls run side by side while it is closed.

pybreaker holds the breaker's lock for the whole of each call it guards, so the threads of
a worker would take turns at Postgres (or at one Redis): a slow SQL read would hold up
every other request's key check. Here a closed breaker's call runs outside the lock, and
only its outcome is counted under it, by pybreaker's own rules (excluded errors, the
failure that trips it). Open, it refuses at once as before; half-open, its one trial runs
under the lock as pybreaker runs it, so the calls behind it wait for the trial's verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pybreaker

T = TypeVar("T")


class CircuitBreaker(pybreaker.CircuitBreaker):
    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.current_state != pybreaker.STATE_CLOSED:
            return super().call(func, *args, **kwargs)
        try:
            found = func(*args, **kwargs)
        except BaseException as error:
            with self._lock:
                if self.current_state == pybreaker.STATE_CLOSED:
                    self.state._handle_error(error)  # counts it, and raises it or the trip
            raise
        if self.fail_counter:  # a success ends a run of failures
            with self._lock:
                if self.current_state == pybreaker.STATE_CLOSED:
                    self.state._handle_success()
        return found
