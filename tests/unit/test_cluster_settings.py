"""REDIS_CLUSTER: read like the other settings, refused by name when unusable."""

from __future__ import annotations

import pytest

from config.settings import Settings, SettingsError


def test_redis_cluster_is_off_by_default():
    assert Settings.from_env({}).redis_cluster is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[("true", True), ("TRUE", True), (" True ", True), ("1", True), ("yes", True)],
        *[("false", False), ("False", False), ("0", False), ("no", False), ("", False)],
    ],
)
def test_redis_cluster_reads_true_and_false_in_any_case(value, expected):
    assert Settings.from_env({"REDIS_CLUSTER": value}).redis_cluster is expected


@pytest.mark.parametrize("value", ["maybe", "2", "enabled", "tru"])
def test_a_bad_redis_cluster_raises_settings_error_naming_the_variable(value):
    with pytest.raises(SettingsError, match="REDIS_CLUSTER"):
        Settings.from_env({"REDIS_CLUSTER": value})


@pytest.mark.parametrize("url", ["unix:///run/redis.sock", "redis://127.0.0.1:7000/2"])
def test_a_cluster_needs_a_tcp_url_of_database_0(url):
    with pytest.raises(SettingsError, match="REDIS_CLUSTER"):
        Settings.from_env({"REDIS_CLUSTER": "true", "REDIS_URL": url})


def test_a_cluster_url_with_database_0_or_none_is_accepted():
    for url in ("redis://127.0.0.1:7000", "redis://127.0.0.1:7000/0"):
        assert Settings.from_env({"REDIS_CLUSTER": "true", "REDIS_URL": url}).redis_cluster
