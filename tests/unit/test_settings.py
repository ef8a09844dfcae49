"""Settings from the environment (README, "Configuration"): defaults, overrides and refusals."""

from __future__ import annotations

import os

import pytest
from psycopg.conninfo import conninfo_to_dict

from config.settings import Settings, SettingsError

BAD_NUMBERS = ["0", "-1", "abc", "1.5", "1e3", "0x10", "+5", "\uff11\uff12"]


def test_database_url_defaults_to_a_local_scrubs_analytics_database():
    settings = Settings.from_env({})
    conninfo = conninfo_to_dict(settings.database_url)
    assert conninfo.get("dbname") == "scrubs_analytics"
    assert "host" not in conninfo and "port" not in conninfo  # the default socket and port
    assert settings.database_name == "scrubs_analytics"


def test_redis_url_defaults_to_local_redis_database_0_with_the_cache_on():
    settings = Settings.from_env({})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.cache_enabled is True


def test_an_empty_redis_url_disables_the_cache():
    settings = Settings.from_env({"REDIS_URL": ""})
    assert settings.cache_enabled is False


def test_max_range_days_defaults_to_366():
    assert Settings.from_env({}).max_range_days == 366


def test_bind_defaults_to_loopback_port_8000():
    assert Settings.from_env({}).bind == "127.0.0.1:8000"


@pytest.mark.parametrize("cores", [1, 2, 8, 64, None])
def test_web_concurrency_defaults_to_a_positive_worker_count(monkeypatch, cores):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    workers = Settings.from_env({}).web_concurrency
    assert type(workers) is int and workers >= 1


def test_web_concurrency_default_follows_the_core_count(monkeypatch):
    counts = {}
    for cores in (1, 4, 32):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        counts[cores] = Settings.from_env({}).web_concurrency
    assert counts[1] <= counts[4] <= counts[32]
    assert counts[1] < counts[32]


@pytest.mark.parametrize(
    ("environ", "attribute", "value"),
    [
        ({"DATABASE_URL": "postgresql://db.internal/analytics"}, "database_name", "analytics"),
        ({"REDIS_URL": "redis://cache:6380/2"}, "redis_url", "redis://cache:6380/2"),
        ({"MAX_RANGE_DAYS": "31"}, "max_range_days", 31),
        ({"MAX_RANGE_DAYS": "1"}, "max_range_days", 1),
        ({"EVENT_RETENTION_DAYS": "400"}, "event_retention_days", 400),
        ({"EVENT_RETENTION_DAYS": "36500"}, "event_retention_days", 36500),
        ({"EVENT_RETENTION_DAYS": ""}, "event_retention_days", None),
        ({}, "event_retention_days", None),
        ({"BIND": "0.0.0.0:9000"}, "bind", "0.0.0.0:9000"),
        ({"WEB_CONCURRENCY": "3"}, "web_concurrency", 3),
    ],
)
def test_a_variable_that_is_set_overrides_the_default(environ, attribute, value):
    assert getattr(Settings.from_env(environ), attribute) == value


def test_from_env_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("MAX_RANGE_DAYS", "45")
    monkeypatch.setenv("BIND", "127.0.0.1:8123")
    settings = Settings.from_env()
    assert (settings.max_range_days, settings.bind) == (45, "127.0.0.1:8123")


@pytest.mark.parametrize("name", ["MAX_RANGE_DAYS", "WEB_CONCURRENCY", "EVENT_RETENTION_DAYS"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_a_bad_number_raises_settings_error_naming_the_variable(name, value):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({name: value})
    assert name in str(raised.value)


@pytest.mark.parametrize("value", ["http://127.0.0.1:6379/0", "127.0.0.1:6379"])
def test_a_redis_url_of_another_scheme_raises_settings_error_naming_the_variable(value):
    with pytest.raises(SettingsError, match="REDIS_URL"):
        Settings.from_env({"REDIS_URL": value})


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOG_LEVEL", "LOUD"), ("CACHE_LEASE_MS", "100"), ("WEB_THREADS", "0")],
)
def test_other_unusable_values_are_refused_by_name(name, value):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({name: value})
    assert name.split("_")[0] in str(refused.value)


@pytest.mark.parametrize("value", ["36501", "999999999", "99999999999"])
def test_a_retention_window_past_a_century_is_refused_by_name(value):
    """Longer windows reach before the first day a date can name (found: a traceback at the
    first import with 99999999999)."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"EVENT_RETENTION_DAYS": value})
    assert "EVENT_RETENTION_DAYS" in str(raised.value) and "36,500" in str(raised.value)


@pytest.mark.parametrize("value", ["36501", "99999999999999999999"])
def test_a_range_past_a_century_is_refused_by_name(value):
    """Found: 10^20 was taken, and a query over 8,000 years then took 27 s of a worker."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"MAX_RANGE_DAYS": value})
    assert "MAX_RANGE_DAYS" in str(raised.value) and "36,500" in str(raised.value)
    assert Settings.from_env({"MAX_RANGE_DAYS": "36500"}).max_range_days == 36_500


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "notaurl"),
        ("DATABASE_URL", "postgresql://scrubs:s3cret-pw@db.internal:notaport/x"),
        ("DATABASE_URL", "host=db.internal port=x password=s3cret-pw"),
        ("DATABASE_URL", "postgresql://scrubs:s3cret-pw@127.0.0.1:99999/x"),
        ("DATABASE_URL", "postgresql://scrubs:s3cret-pw@h/x?sslmode=bogus"),
        ("DATABASE_URL", "postgresql://scrubs:s3cret-pw@h/x?connect_timeout=abc"),
        ("REDIS_URL", "redis://127.0.0.1:notaport/9"),
        ("REDIS_URL", "redis://:s3cret-pw@127.0.0.1:99999/0"),
        ("REDIS_URL", "redis://127.0.0.1:6379/abc"),
        ("REDIS_URL", "unix:///run/redis.sock?db=first"),
    ],
)
def test_connection_strings_that_cannot_connect_are_refused_by_name_without_the_secret(name, value):
    """Found: a psycopg traceback, workers failing over and over, and a database path that
    is no number taken quietly as database 0."""
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({name: value})
    assert name in str(refused.value) and "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "postgresql://h1:5432,h2:5433/x"),
        ("DATABASE_URL", "host=/var/run/postgresql dbname=x"),
        ("DATABASE_URL", "postgresql://h:65535/x?sslmode=verify-full&connect_timeout=3"),
        ("REDIS_URL", "redis://:pw@127.0.0.1:6380/15"),
        ("REDIS_URL", "rediss://cache.internal"),
        ("REDIS_URL", "unix:///run/redis.sock?db=2"),
    ],
)
def test_connection_strings_that_can_connect_are_taken(name, value):
    assert getattr(Settings.from_env({name: value}), name.lower()) == value
