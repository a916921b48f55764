"""Settings: read from the environment in one place, documented in .env.example, safe by default."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from adtivity.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s" * 40


def test_every_setting_is_documented_in_env_example():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    names = {f.name.upper() for f in dataclasses.fields(Settings)}
    assert names - documented == set()
    assert documented - names == {"PROMETHEUS_MULTIPROC_DIR"}


def test_production_needs_a_jwt_secret():
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        Settings.from_env({"ADTIVITY_ENV": "production"})
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        Settings.from_env({})  # production is the default
    assert Settings.from_env({"JWT_SECRET": SECRET}).jwt_secret == SECRET


def test_development_has_a_signing_secret_that_production_never_uses():
    development = Settings.from_env({"ADTIVITY_ENV": "development"})
    assert development.signing_secret and not development.jwt_secret
    production = Settings.from_env({"JWT_SECRET": SECRET})
    assert production.signing_secret == SECRET


def test_defaults_follow_the_security_policy():
    settings = Settings.from_env({"JWT_SECRET": SECRET})
    assert settings.bcrypt_rounds == 12
    assert settings.access_token_seconds == 900
    assert settings.password_min_length == 10
    assert (settings.login_max_failures, settings.login_failure_window_seconds) == (5, 900)
    assert settings.cors_allowed_origins == ()


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"JWT_SECRET": "short"}, "at least 32"),
        ({"JWT_SECRET": SECRET, "BCRYPT_ROUNDS": "10"}, "at least 12"),
        ({"JWT_SECRET": SECRET, "ACCESS_TOKEN_SECONDS": "3600"}, "15 minutes"),
        ({"JWT_SECRET": SECRET, "PORT": "eighty"}, "PORT must be a int"),
        ({"ADTIVITY_ENV": "staging"}, "ADTIVITY_ENV"),
        ({"JWT_SECRET": SECRET, "WEB_KEEPALIVE_REQUESTS": "0"}, "WEB_KEEPALIVE_REQUESTS"),
        ({"JWT_SECRET": SECRET, "WEB_WORKER_CONNECTIONS": "0"}, "WEB_WORKER_CONNECTIONS"),
        ({"JWT_SECRET": SECRET, "WEB_CLICKHOUSE_CLIENTS": "0"}, "WEB_CLICKHOUSE_CLIENTS"),
        ({"JWT_SECRET": SECRET, "WEB_CLICKHOUSE_WAIT_SECONDS": "-1"}, "WEB_CLICKHOUSE_WAIT_SECONDS"),
        ({"JWT_SECRET": SECRET, "INGEST_MAX_BATCH": "65537"}, "INGEST_MAX_BATCH"),
        ({"JWT_SECRET": SECRET, "INGEST_MAX_BATCH": "0"}, "INGEST_MAX_BATCH"),
        ({"JWT_SECRET": SECRET, "MAX_JSON_DEPTH": "201"}, "MAX_JSON_DEPTH"),
        ({"JWT_SECRET": SECRET, "MAX_JSON_DEPTH": "1"}, "MAX_JSON_DEPTH"),
        ({"JWT_SECRET": SECRET, "PERSIST_BATCH_EVENTS": "0"}, "PERSIST_BATCH_EVENTS"),
        ({"JWT_SECRET": SECRET, "PERSIST_BATCH_SECONDS": "0"}, "PERSIST_BATCH_SECONDS"),
        ({"ADTIVITY_ENV": "development", "REDIS_URL": "nonsense"}, "REDIS_URL"),
    ],
)
def test_bad_settings_stop_start_up_with_the_variable_named(environ, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_lists_and_numbers_are_parsed():
    settings = Settings.from_env(
        {
            "ADTIVITY_ENV": "development",
            "CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "PROBE_TIMEOUT_SECONDS": "0.5",
            "WEB_WORKERS": "4",
        }
    )
    assert settings.cors_allowed_origins == ("https://a.example", "https://b.example")
    assert settings.probe_timeout_seconds == 0.5 and settings.web_workers == 4
