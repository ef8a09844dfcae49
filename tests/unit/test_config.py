"""config/settings.py: the defaults of CONTRACT §4 and refusals of unusable values."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from config.settings import Settings, SettingsError


def test_the_defaults_are_the_contracts():
    settings = Settings.from_env({})
    assert conninfo_to_dict(settings.database_url)["dbname"] == "scrubs_analytics"
    assert settings.redis_url == "redis://127.0.0.1:6379/0" and settings.cache_enabled
    assert settings.max_range_days == 366
    assert settings.bind == "127.0.0.1:8000"
    assert settings.web_concurrency >= 1


def test_an_empty_redis_url_disables_the_cache():
    assert not Settings.from_env({"REDIS_URL": ""}).cache_enabled


def test_values_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "MAX_RANGE_DAYS": "31",
            "WEB_CONCURRENCY": "3",
            "BIND": "0.0.0.0:9000",
            "LOG_LEVEL": "debug",
        }
    )
    assert (settings.max_range_days, settings.web_concurrency, settings.bind) == (
        31,
        3,
        "0.0.0.0:9000",
    )
    assert settings.log_level == "DEBUG"
    assert settings.base_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_RANGE_DAYS", "0"),
        ("MAX_RANGE_DAYS", "-1"),
        ("MAX_RANGE_DAYS", "abc"),
        ("MAX_RANGE_DAYS", "1.5"),
        ("WEB_CONCURRENCY", "many"),
        ("LOG_LEVEL", "LOUD"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("CACHE_LEASE_MS", "100"),
    ],
)
def test_an_unusable_value_is_refused_by_name(name, value):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({name: value})
    assert name.split("_")[0] in str(refused.value)
