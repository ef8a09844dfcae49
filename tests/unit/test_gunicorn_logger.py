"""gunicorn's access line: built only when its logger would write it."""

from __future__ import annotations

import logging

import pytest
from gunicorn.config import Config

from config.gunicorn_logger import AccessLinesOnlyWhenLogged


def logger(access_level: str) -> AccessLinesOnlyWhenLogged:
    config = Config()
    config.set(
        "logconfig_dict",
        {
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {"gunicorn.access": {"level": access_level, "propagate": False}},
        },
    )
    return AccessLinesOnlyWhenLogged(config)


@pytest.mark.parametrize(("access_level", "built"), [("CRITICAL", 0), ("INFO", 1)])
def test_the_access_fields_are_built_only_for_a_logger_that_writes_them(
    monkeypatch, access_level, built
):
    found = logger(access_level)
    calls = []
    monkeypatch.setattr(found, "atoms", lambda *args: calls.append(args) or {})
    found.access(object(), object(), {}, 0.001)
    assert len(calls) == built
    logging.getLogger("gunicorn.access").setLevel(logging.NOTSET)
