"""Where the time goes, for a target the bench finds unmet: requests answered by the app in
this process (no gunicorn, no socket to the client: the service's own Python and its
waits on Postgres and Redis), or a command run under the profiler in a process of its own.

    python -m bench.profiles command OUTPUT.json -- usage import FILE
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

TOP = 15
# Where a thread waits rather than computes: for Postgres or Redis (psycopg's wait, socket
# calls, poll), or for other threads (locks, queues).
WAITS = (
    "psycopg/connection.py:479(wait)",
    "'acquire' of '_thread.lock'",
    "'get' of '_queue.SimpleQueue'",
    "select.epoll",
    "select.poll",
    "'recv_into' of '_socket.socket'",
    "'sendall' of '_socket.socket'",
    "'recv' of '_socket.socket'",
)


def is_wait(function: str) -> bool:
    return any(marker in function for marker in WAITS)


def summary(
    profile: cProfile.Profile, units: int, seconds: float, more: list[cProfile.Profile] = ()
) -> dict:
    """The top functions by own time and by cumulative time, in milliseconds per unit (a
    request, or the whole command), `more` (other threads' profiles) added in."""
    stats = pstats.Stats(profile, stream=io.StringIO())
    for other in more:
        stats.add(other)

    def rows(order: str) -> list[dict]:
        stats.sort_stats(order)
        found = []
        for func in stats.fcn_list[:TOP]:  # type: ignore[attr-defined]
            calls, _, own, cumulative, _ = stats.stats[func]  # type: ignore[attr-defined]
            filename, line, name = func
            where = name if filename == "~" else f"{_short(filename)}:{line}({name})"
            found.append(
                {
                    "function": where,
                    "calls_per_unit": round(calls / units, 2),
                    "own_ms": round(own * 1000 / units, 4),
                    "cumulative_ms": round(cumulative * 1000 / units, 4),
                }
            )
        return found

    return {
        "units": units,
        "ms_per_unit_profiled": round(seconds * 1000 / units, 3),
        "by_own_time": rows("tottime"),
        "by_cumulative_time": rows("cumulative"),
    }


ROOT = f"{Path(__file__).resolve().parents[1]}/"  # the checkout this runs from


def _short(filename: str) -> str:
    """A profiled function's file, from its package or from the checkout's root."""
    for marker in ("/site-packages/", ROOT, "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def requests(
    env: dict, method: str, path: str, headers: dict, body: str, count: int, before=None
) -> dict:
    """`count` requests answered by a fresh app of the service in this process, built from
    `env` as gunicorn's workers build theirs; `before(n)` runs unprofiled before each."""
    from werkzeug.test import EnvironBuilder

    from app import create_app
    from config.settings import Settings
    from service.entrypoints.http.conventions import services_of

    app = create_app(Settings.from_env(env))
    services = services_of(app)
    services.database.open()
    built = EnvironBuilder(path=path, method=method, headers=headers, data=body).get_environ()
    payload = body.encode()

    def one() -> None:
        environ = dict(built)
        environ["wsgi.input"] = io.BytesIO(payload)
        statuses = []
        answer = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(answer)
        if hasattr(answer, "close"):
            answer.close()
        if not statuses[0].startswith("200"):
            raise SystemExit(f"profiled request answered {statuses[0]}")

    for _ in range(20):  # the first requests open connections and fill what is missing
        one()
    profile = cProfile.Profile()
    spent = 0.0
    try:
        for n in range(count):
            if before is not None:
                before(n)
            began = time.perf_counter()
            profile.enable()
            one()
            profile.disable()
            spent += time.perf_counter() - began
    finally:
        services.close()
    return summary(profile, count, spent)


def _profile_threads() -> list[cProfile.Profile]:
    """Every thread started from now on runs under a profiler of its own, kept here: an
    import commits from threads, and its main thread mostly waits for them."""
    kept: list[cProfile.Profile] = []
    run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profile = cProfile.Profile()
        kept.append(profile)
        profile.enable()
        try:
            run(thread)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    return kept


def command(argv: list[str], output: Path, main: Callable[[], None]) -> None:
    import service.entrypoints.cli.root  # noqa: F401  (its imports are start-up, not work)

    threads = _profile_threads()
    profile = cProfile.Profile()
    sys.argv = ["scrubs-analytics", *argv]
    began = time.perf_counter()
    profile.enable()
    try:
        main()
    except SystemExit as stopped:
        if stopped.code not in (None, 0):
            raise
    finally:
        profile.disable()
    found = summary(profile, 1, time.perf_counter() - began, threads)
    found["note"] = (
        f"the command's main thread and its {len(threads)} other threads, their times added"
        " (threads overlap: the sum can pass the command's time)"
    )
    output.write_text(json.dumps(found))


if __name__ == "__main__":
    if sys.argv[1] != "command" or sys.argv[3] != "--":
        raise SystemExit(__doc__)
    from service.entrypoints.cli.main import main as cli_main

    command(sys.argv[4:], Path(sys.argv[2]), cli_main)
