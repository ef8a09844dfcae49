"""Connections to Postgres: the server's pool (one per process, opened after fork, closed
on exit) and a command's own connections."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import TypeVar

import psycopg
import pybreaker
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from service.adapters.breaker import CircuitBreaker

T = TypeVar("T")


class DatabaseUnavailable(psycopg.OperationalError):
    """Postgres kept failing and the breaker is open: not even trying."""


class IntegerNumericLoader(Loader):
    """Sums of bigint columns come back as numeric; every numeric here is whole."""

    def load(self, data: bytes | bytearray | memoryview) -> int:
        return int(bytes(data))


# JIT compiling pays for long analytical scans; every statement here is short or a batch
# of an import, and compiling it cost more than running it (LLVM took a quarter of
# Postgres's CPU in an import of 1M events).
OWN_OPTIONS = "-c jit=off"


def session_options(url: str, *settings: str) -> str:
    """libpq `options` of a connection: DATABASE_URL's own, then ours (later ones win)."""
    own = conninfo_to_dict(url).get("options")
    return " ".join(part for part in (own, OWN_OPTIONS, *settings) if part)


def configure_connection(conn: psycopg.Connection) -> None:
    conn.adapters.register_loader("numeric", IntegerNumericLoader)


class _FreshPoolForTrials(pybreaker.CircuitBreakerListener):
    """A pool whose connections failed reconnects with a backoff that doubles each time,
    which can keep it dead long after Postgres is back: each trial of the breaker (after
    consecutive connection failures) gets a pool of its own that connects at once."""

    def __init__(self, database: PooledDatabase) -> None:
        self.database = database

    def state_change(self, cb, old_state, new_state) -> None:
        if new_state.name == pybreaker.STATE_HALF_OPEN:
            self.database.replace_pool()


class PooledDatabase:
    """The server's connections: a pool that belongs to the process that opened it (pools
    do not survive fork), reads retried once after a lost connection, and a breaker that
    fails fast while Postgres keeps failing."""

    def __init__(
        self,
        url: str,
        *,
        max_size: int = 4,
        statement_timeout_ms: int = 5000,
        wait_timeout: float = 2.0,
        application_name: str = "scrubs-analytics",
    ) -> None:
        self.url = url
        self._max_size = max_size
        self._statement_timeout_ms = statement_timeout_ms
        self._wait_timeout = wait_timeout
        self._application_name = application_name
        self._pool: ConnectionPool | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        # Only a lost server counts against it: a query's own error is not an outage.
        self.breaker = CircuitBreaker(
            fail_max=3,
            reset_timeout=1,
            exclude=[lambda error: not isinstance(error, psycopg.OperationalError)],
            listeners=[_FreshPoolForTrials(self)],
            name="postgres",
        )
        self._pinger: ThreadPoolExecutor | None = None
        self._pinger_pid: int | None = None
        self._ping_future: Future | None = None
        self._ping_conn: psycopg.Connection | None = None

    @property
    def pool(self) -> ConnectionPool:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pool = self._new_pool()
                    self._pid = os.getpid()
        assert self._pool is not None
        return self._pool

    def open(self) -> None:
        """Open this process's pool now rather than on first use (a worker after fork)."""
        self.pool  # noqa: B018

    def _new_pool(self) -> ConnectionPool:
        pool = ConnectionPool(
            self.url,
            open=False,
            min_size=1,
            max_size=self._max_size,
            timeout=self._wait_timeout,
            max_lifetime=30 * 60.0,
            max_idle=5 * 60.0,
            configure=configure_connection,
            kwargs={
                "autocommit": True,
                "connect_timeout": 2,
                "application_name": self._application_name,
                "options": session_options(
                    self.url, f"-c statement_timeout={self._statement_timeout_ms}"
                ),
            },
            name=self._application_name,
        )
        pool.open(wait=False)
        return pool

    def replace_pool(self) -> None:
        """A fresh pool, connecting at once; the old one is closed in the background."""
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                return
            old, self._pool = self._pool, self._new_pool()
        if old is not None:
            threading.Thread(target=old.close, kwargs={"timeout": 5}, daemon=True).start()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """An autocommit connection; use `conn.transaction()` for several statements."""
        with self.pool.connection() as conn:
            yield conn

    def read(self, query: Callable[..., T], *args: object) -> T:
        """Run a read-only query function; after a lost connection (say Postgres restarted),
        drop the pool's dead connections and try once more. While Postgres keeps failing,
        the breaker answers at once instead of letting every request wait for the pool."""
        try:
            return self.breaker.call(self._read_retrying_once, query, *args)
        except pybreaker.CircuitBreakerError:
            raise DatabaseUnavailable("Postgres has been failing; not trying for now") from None

    def _read_retrying_once(self, query: Callable[..., T], *args: object) -> T:
        try:
            with self.connection() as conn:
                return query(conn, *args)
        except PoolTimeout:
            raise  # trying again at once would only double the wait
        except psycopg.OperationalError:
            self.pool.check()
            with self.connection() as conn:
                return query(conn, *args)

    def ping(self, timeout: float) -> float:
        """Milliseconds for a round trip, or an exception; never blocks beyond `timeout`.
        Checks that overlap share one round trip. The check has a connection of its own,
        outside the pool, so that a pool busy with requests does not read as Postgres down."""
        started = time.perf_counter()
        with self._lock:
            if self._pinger is None or self._pinger_pid != os.getpid():
                self._pinger = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-ping")
                self._pinger_pid = os.getpid()
                self._ping_conn = None
                self._ping_future = None
            if self._ping_future is None or self._ping_future.done():
                self._ping_future = self._pinger.submit(self._ping_once, timeout)
            future = self._ping_future
        try:
            future.result(timeout=timeout)
        except FutureTimeout:
            raise TimeoutError(f"no answer within {timeout:.2f}s") from None
        return (time.perf_counter() - started) * 1000

    def _ping_once(self, timeout: float) -> None:
        """In the ping thread alone: one kept connection, made again after any failure."""
        try:
            if self._ping_conn is None or self._ping_conn.closed:
                self._ping_conn = psycopg.connect(
                    self.url,
                    autocommit=True,
                    connect_timeout=max(1, round(timeout)),
                    application_name=f"{self._application_name}-readiness",
                    options=session_options(
                        self.url, f"-c statement_timeout={int(timeout * 1000)}"
                    ),
                )
            self._ping_conn.execute("SELECT 1")
        except BaseException:
            if self._ping_conn is not None:
                self._ping_conn.close()
            self._ping_conn = None
            raise

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
        self._pool = None
        self._pid = None
        if self._pinger is not None and self._pinger_pid == os.getpid():
            self._pinger.shutdown(wait=False, cancel_futures=True)
            self._pinger = None
            if self._ping_conn is not None:
                self._ping_conn.close()


class CommandDatabase:
    """A command's connections: no pool and no background threads. Each connection is
    opened on first use, so that a failure is reported at once and in libpq's own words,
    and kept for the command's later steps; threads of one command (cache warm's readers)
    each get one of their own."""

    MAX_KEPT = 4

    def __init__(self, url: str) -> None:
        self.url = url
        self._kept: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """An autocommit connection; use `conn.transaction()` for several statements."""
        with self._lock:
            conn = self._kept.pop() if self._kept else None
        if conn is None or conn.closed:
            conn = connect(self.url, autocommit=True)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        if conn.broken or conn.info.transaction_status != TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            if len(self._kept) < self.MAX_KEPT:
                self._kept.append(conn)
                return
        conn.close()

    def open(self) -> None:
        """Connect now rather than on first use."""
        with self.connection():
            pass

    def read(self, query: Callable[..., T], *args: object) -> T:
        with self.connection() as conn:
            return query(conn, *args)

    def ping(self, timeout: float) -> float:
        started = time.perf_counter()
        with self.connection() as conn:
            conn.execute("SELECT 1")
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        with self._lock:
            kept, self._kept = self._kept, []
        for conn in kept:
            conn.close()


Database = PooledDatabase | CommandDatabase


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    """A connection of its own, for commands that hold one for long (imports, migrations)."""
    conn = psycopg.connect(url, connect_timeout=5, options=session_options(url), **kwargs)
    configure_connection(conn)
    return conn
