"""Where processes leave their metric samples (prometheus_client's multiprocess mode).

Each gunicorn instance has a directory of its own, made at start and removed at exit:

    <METRICS_DIR>/<database>/instance-<master pid>-<random>/

METRICS_DIR (default: scrubs-analytics-metrics-<uid> in the system's temporary directory)
is made private (0700) and used only when it is a directory of this user that no one else
can write to; otherwise each instance gets a fresh private directory of its own and logs
why. A command run on the same host adds its samples to a live instance's directory of the
same database, so that the server's /metrics counts its imports.

Standard library only: the gunicorn config imports this before anything imports
prometheus_client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from pathlib import Path

log = logging.getLogger("scrubs.metrics")
INSTANCE_PREFIX = "instance-"


def private_directory(path: Path) -> bool:
    """Make `path` (0700) unless it exists; True when it is a real directory of this user
    that no other user can write to."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    try:
        found = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(found.st_mode)
        and found.st_uid == os.getuid()
        and not found.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def database_directory(base: Path, database: str) -> Path | None:
    """<base>/<database>, when both are safe to use."""
    if not private_directory(base):
        return None
    directory = base / database
    return directory if private_directory(directory) else None


def new_instance_directory(base: Path, database: str) -> Path:
    """A directory of this instance's own: under the database's directory when that is safe,
    else a fresh private temporary one (commands will not find it, and nothing else breaks)."""
    parent = database_directory(base, database)
    if parent is None:
        log.warning("metrics directory %s is not usable; using a private one", base)
        return Path(tempfile.mkdtemp(prefix="scrubs-analytics-metrics-"))
    for stale in parent.glob(f"{INSTANCE_PREFIX}*"):
        if not _alive(stale):  # left by an instance that was killed
            _remove(stale)
    return Path(tempfile.mkdtemp(prefix=f"{INSTANCE_PREFIX}{os.getpid()}-", dir=parent))


def live_instance_directory(base: Path, database: str) -> Path | None:
    """A live instance's directory of this database on this host (the first by name), if
    any."""
    parent = database_directory(base, database) if base.is_dir() else None
    if parent is None:
        return None
    return min((path for path in parent.glob(f"{INSTANCE_PREFIX}*") if _alive(path)), default=None)


def remove_instance_directory(directory: Path) -> None:
    _remove(directory)


def _alive(directory: Path) -> bool:
    """Whether the master that made this instance directory still runs."""
    try:
        pid = int(directory.name.removeprefix(INSTANCE_PREFIX).split("-", 1)[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return directory.is_dir()


def _remove(directory: Path) -> None:
    for sample in directory.glob("*.db"):
        sample.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        directory.rmdir()
