"""gunicorn's access line: built only when its logger would write it."""

from __future__ import annotations

import logging

import pytest
from gunicorn.config import Config

from config.gunicorn_logger import AccessLinesOnlyWhenLogged


def logger(access_level: int) -> AccessLinesOnlyWhenLogged:
    """The logger as gunicorn sets it up from a logging config (so that gunicorn would
    build access lines), with an access logger of its own: no global logging is touched."""
    found = AccessLinesOnlyWhenLogged.__new__(AccessLinesOnlyWhenLogged)
    found.cfg = Config()
    found.cfg.set("logconfig_dict", {"version": 1})
    found.access_log = logging.getLogger(f"test.gunicorn.access.{access_level}")
    found.access_log.setLevel(access_level)
    found.access_log.propagate = False
    return found


@pytest.mark.parametrize(("access_level", "built"), [(logging.CRITICAL, 0), (logging.INFO, 1)])
def test_the_access_fields_are_built_only_for_a_logger_that_writes_them(
    monkeypatch, access_level, built
):
    found = logger(access_level)
    calls = []
    monkeypatch.setattr(found, "atoms", lambda *args: calls.append(args) or {})
    found.access(object(), object(), {}, 0.001)
    assert len(calls) == built
