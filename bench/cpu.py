"""CPU time of this machine's processes by name, read from /proc: where a run's CPU went
(the web workers, Postgres, Redis, the load generator), beside what it achieved."""

from __future__ import annotations

import os
from pathlib import Path

# The processes a bench run's work lands in, by their name in /proc/<pid>/stat.
MEASURED = ("gunicorn", "postgres", "redis-server", "wrk")


def seconds_by_name(names: tuple[str, ...] = MEASURED) -> dict[str, float]:
    """CPU seconds so far of the processes of each name: their own times and those of the
    children they have reaped (a recycled web worker, a closed Postgres connection)."""
    ticks = dict.fromkeys(names, 0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        name, _, rest = text.partition(") ")
        name = name.partition(" (")[2]
        if name in ticks:
            ticks[name] += sum(int(field) for field in rest.split()[11:15])  # utime .. cstime
    per_second = os.sysconf("SC_CLK_TCK")
    return {name: count / per_second for name, count in ticks.items()}


def spent_since(before: dict[str, float]) -> dict[str, float]:
    now = seconds_by_name(tuple(before))
    return {name: now[name] - before[name] for name in before}
