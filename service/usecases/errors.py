"""Failures of the operations the command line runs: each says in one line what could not
be done (the command line prints it and exits 1)."""

from __future__ import annotations


class OperationFailed(Exception):
    """The operation cannot do what was asked; the message says why, in one line."""


class CacheDisabled(OperationFailed):
    def __init__(self) -> None:
        super().__init__("the cache is disabled (REDIS_URL is empty)")
