"""Settings: read from the environment in one place, documented in .env.example, safe by default."""

from __future__ import annotations

import dataclasses
import re
import subprocess
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


@pytest.mark.parametrize("environment", ["development", "test", "production"])
def test_every_environment_needs_a_jwt_secret(environment):
    """No environment signs tokens with a secret anyone could read in the source: development included
    (`make run` writes a random one of its own, test_make_run_gives_the_checkout_a_secret_of_its_own)."""
    with pytest.raises(SettingsError, match="JWT_SECRET must be set"):
        Settings.from_env({"ADTIVITY_ENV": environment})
    assert Settings.from_env({"ADTIVITY_ENV": environment, "JWT_SECRET": SECRET}).jwt_secret == SECRET


def test_production_is_the_default_environment():
    assert Settings.from_env({"JWT_SECRET": SECRET}).adtivity_env == "production"


def test_make_run_gives_the_checkout_a_secret_of_its_own(tmp_path):
    """bin/dev-env, which `make run` calls first: a new random JWT_SECRET in .env (owner-only), never
    printed, kept on later starts; an empty JWT_SECRET line is filled, other lines are left alone."""
    first, second = tmp_path / "one.env", tmp_path / "two.env"
    first.write_text("ADTIVITY_ENV=development\nJWT_SECRET=\nPORT=8010\n")
    ran = subprocess.run([ROOT / "bin" / "dev-env", first], capture_output=True, text=True, check=True)
    secret = re.search(r"^JWT_SECRET=(.*)$", first.read_text(), re.M).group(1)
    assert len(secret) >= 32 and secret not in ran.stdout + ran.stderr
    assert first.read_text() == f"ADTIVITY_ENV=development\nJWT_SECRET={secret}\nPORT=8010\n"
    assert first.stat().st_mode & 0o777 == 0o600
    Settings.from_env({"ADTIVITY_ENV": "development", "JWT_SECRET": secret})
    subprocess.run([ROOT / "bin" / "dev-env", first], check=True)
    assert re.search(r"^JWT_SECRET=(.*)$", first.read_text(), re.M).group(1) == secret
    subprocess.run([ROOT / "bin" / "dev-env", second], check=True)
    assert re.search(r"^JWT_SECRET=(.*)$", second.read_text(), re.M).group(1) not in ("", secret)


def test_defaults_follow_the_security_policy():
    settings = Settings.from_env({"JWT_SECRET": SECRET})
    assert settings.bcrypt_rounds == 12
    assert settings.access_token_seconds == 900
    assert settings.password_min_length == 10
    assert (settings.login_max_failures, settings.login_failure_window_seconds) == (5, 900)
    assert (settings.password_hash_concurrency, settings.password_hash_wait_seconds) == (2, 5.0)
    assert (settings.dedup_window_days, settings.dedup_filter_bits_per_id) == (7, 24)
    assert Settings.from_env({"JWT_SECRET": SECRET, "DEDUP_WINDOW_DAYS": "30"}).dedup_window_days == 30
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
        ({"JWT_SECRET": SECRET, "REDIS_CLUSTER": "true"}, "DRAMATIQ_REDIS_URL must name a plain Redis"),
        ({"JWT_SECRET": SECRET, "REDIS_CLUSTER_NODES": "10.0.0.1:7001,10.0.0.2"}, "REDIS_CLUSTER_NODES"),
        ({"JWT_SECRET": SECRET, "DRAMATIQ_REDIS_URL": "redis:///0"}, "DRAMATIQ_REDIS_URL has no host"),
        ({"JWT_SECRET": SECRET, "REALTIME_BRIDGE_LEASE_SECONDS": "0"}, "REALTIME_BRIDGE_LEASE_SECONDS"),
        ({"JWT_SECRET": SECRET, "WEB_WORKER_CONNECTIONS": "0"}, "WEB_WORKER_CONNECTIONS"),
        ({"JWT_SECRET": SECRET, "WEB_CLICKHOUSE_CLIENTS": "0"}, "WEB_CLICKHOUSE_CLIENTS"),
        ({"JWT_SECRET": SECRET, "WEB_CLICKHOUSE_WAIT_SECONDS": "-1"}, "WEB_CLICKHOUSE_WAIT_SECONDS"),
        ({"JWT_SECRET": SECRET, "INGEST_MAX_BATCH": "65537"}, "INGEST_MAX_BATCH"),
        ({"JWT_SECRET": SECRET, "INGEST_MAX_BATCH": "0"}, "INGEST_MAX_BATCH"),
        ({"JWT_SECRET": SECRET, "MAX_JSON_DEPTH": "201"}, "MAX_JSON_DEPTH"),
        ({"JWT_SECRET": SECRET, "MAX_JSON_DEPTH": "1"}, "MAX_JSON_DEPTH"),
        ({"JWT_SECRET": SECRET, "PERSIST_BATCH_EVENTS": "0"}, "PERSIST_BATCH_EVENTS"),
        ({"JWT_SECRET": SECRET, "PERSIST_BATCH_SECONDS": "0"}, "PERSIST_BATCH_SECONDS"),
        ({"ADTIVITY_ENV": "development", "JWT_SECRET": SECRET, "REDIS_URL": "nonsense"}, "REDIS_URL"),
        ({"JWT_SECRET": SECRET, "PASSWORD_HASH_CONCURRENCY": "0"}, "PASSWORD_HASH_CONCURRENCY"),
        ({"JWT_SECRET": SECRET, "DEDUP_WINDOW_DAYS": "0"}, "DEDUP_WINDOW_DAYS"),
        ({"JWT_SECRET": SECRET, "DEDUP_WINDOW_DAYS": "36"}, "DEDUP_WINDOW_DAYS"),
        ({"JWT_SECRET": SECRET, "DEDUP_FILTER_BITS_PER_ID": "3"}, "DEDUP_FILTER_BITS_PER_ID"),
        ({"JWT_SECRET": SECRET, "DEDUP_FILTER_IDS_PER_DAY": "200000000"}, "add STREAM_SHARDS"),
        ({"JWT_SECRET": SECRET, "DEDUP_SETTLE_SECONDS": "0"}, "DEDUP_SETTLE_SECONDS"),
        ({"JWT_SECRET": SECRET, "PASSWORD_HASH_WAIT_SECONDS": "-1"}, "PASSWORD_HASH_WAIT_SECONDS"),
    ],
)
def test_bad_settings_stop_start_up_with_the_variable_named(environ, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_lists_and_numbers_are_parsed():
    settings = Settings.from_env(
        {
            "ADTIVITY_ENV": "development",
            "JWT_SECRET": SECRET,
            "CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "PROBE_TIMEOUT_SECONDS": "0.5",
            "WEB_WORKERS": "4",
        }
    )
    assert settings.cors_allowed_origins == ("https://a.example", "https://b.example")
    assert settings.probe_timeout_seconds == 0.5 and settings.web_workers == 4


def test_chain_endpoints_and_confirmations_are_read_per_chain():
    settings = Settings.from_env(
        {
            "JWT_SECRET": SECRET,
            "CHAIN_RPC_URLS": "1=https://eth.example/key, 1=https://backup.example ,10=http://127.0.0.1:8545",
            "CHAIN_CONFIRMATIONS": "10=5",
        }
    )
    assert settings.chain_rpc == {
        "1": ("https://eth.example/key", "https://backup.example"),
        "10": ("http://127.0.0.1:8545",),
    }
    assert (settings.confirmations("10"), settings.confirmations("1")) == (5, 12)
    assert "eth.example" not in repr(settings)  # endpoint URLs often carry an API key


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CHAIN_RPC_URLS", "mainnet=https://eth.example", "CHAIN_RPC_URLS must be chain_id=url pairs"),
        ("CHAIN_RPC_URLS", "1=eth.example", "CHAIN_RPC_URLS must be chain_id=url pairs"),
        ("CHAIN_CONFIRMATIONS", "1=0", "CHAIN_CONFIRMATIONS must be chain_id=count pairs"),
        ("CHAIN_CONFIRMATIONS", "1=twelve", "CHAIN_CONFIRMATIONS must be chain_id=count pairs"),
        ("CHAIN_BATCH_SIZE", "0", "CHAIN_BATCH_SIZE must be between 1 and 1000"),
        ("CHAIN_POLL_SECONDS", "0", "CHAIN_POLL_SECONDS must be at least 1"),
    ],
)
def test_chain_settings_that_make_no_sense_are_refused(name, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"JWT_SECRET": SECRET, name: value})
