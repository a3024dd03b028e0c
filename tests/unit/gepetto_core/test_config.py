"""Settings: chutes-miner names parse, bad values name the variable, secrets stay secret."""

from __future__ import annotations

import logging

import pytest

from bot.settings import load_bot_settings
from gepetto_core.config import load_settings, normalize_postgres_dsn
from gepetto_core.errors import ConfigError

SEED = "0x" + "1f" * 32
VALIDATORS = (
    '{"defaultApi": "https://api.chutes.ai", "supported": [{"hotkey": "5Dt7", '
    '"api": "https://api.chutes.ai", "socket": "wss://ws.chutes.ai", '
    '"registry": "registry.chutes.ai"}]}'
)
MINER_ENV = {
    "MINER_SS58": "5Miner",
    "MINER_SEED": SEED,
    "VALIDATORS": VALIDATORS,
    "POSTGRESQL": "postgresql+asyncpg://chutes:hunter2@postgres:5432/chutes",
    "REDIS_URL": "redis://:redispw@redis:6379",
    "CHUTES_NAMESPACE": "miners",
}


def test_chutes_miner_environment_names_parse() -> None:
    s = load_settings(MINER_ENV)
    assert s.miner_ss58 == "5Miner"
    assert s.require_miner_identity()[1].get_secret_value() == SEED
    validators = s.require_validators()
    assert validators.default_api == "https://api.chutes.ai"
    assert validators.by_hotkey("5Dt7") is not None
    assert validators.supported[0].socket == "wss://ws.chutes.ai"
    assert s.postgres_dsn() == "postgresql://chutes:hunter2@postgres:5432/chutes"
    assert s.chutes_namespace == "miners"


def test_defaults_match_chutes_miner() -> None:
    s = load_settings({})
    assert (s.chutes_namespace, s.registry_proxy_port, s.chute_shutdown_time_seconds) == (
        "chutes",
        30500,
        180,
    )
    assert s.failure_window_minutes == 16 and s.failure_cooldown_minutes == 60


def test_gepetto_settings_use_the_prefix() -> None:
    s = load_bot_settings(
        {
            "GEPETTO_SLACK_MODE": "http",
            "GEPETTO_ROLES": '{"U1": "admin"}',
            "GEPETTO_SLACK_ALLOWED_CHANNELS": "C1, C2",
            "SLACK_MODE": "socket",
        }
    )
    assert s.slack_mode == "http"
    assert s.roles == {"U1": "admin"}
    assert s.slack_allowed_channels == ["C1", "C2"]


def test_the_core_settings_know_nothing_of_slack() -> None:
    core = load_settings({"GEPETTO_SLACK_BOT_TOKEN": "xoxb-for-the-bot-only"})
    assert not any("slack" in name for name in type(core).model_fields)
    assert "xoxb-for-the-bot-only" not in repr(core.model_dump())


def test_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUTES_NAMESPACE", "from-env")
    monkeypatch.setenv("GEPETTO_SYNC_INTERVAL_SECONDS", "5")
    s = load_settings()
    assert s.chutes_namespace == "from-env" and s.sync_interval_seconds == 5


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"VALIDATORS": "{not json"}, "VALIDATORS"),
        ({"VALIDATORS": '{"supported": [{"api": "x"}]}'}, "VALIDATORS"),
        ({"POSTGRESQL": "mysql://u:p@h/db"}, "POSTGRESQL"),
        ({"POSTGRESQL": "not a url"}, "POSTGRESQL"),
        ({"REGISTRY_PROXY_PORT": "seventy"}, "REGISTRY_PROXY_PORT"),
        ({"GEPETTO_HTTP_PORT": "70000"}, "GEPETTO_HTTP_PORT"),
        ({"GEPETTO_ROLES": '{"U1": "emperor"}'}, "GEPETTO_ROLES"),
        ({"MINER_SEED": "0xnothex"}, "MINER_SEED"),
    ],
)
def test_bad_values_fail_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}: ")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"GEPETTO_SLACK_MODE": "carrier-pigeon"}, "GEPETTO_SLACK_MODE"),
        ({"GEPETTO_SLACK_BOT_TOKEN": ["not", "a", "string"]}, "GEPETTO_SLACK_BOT_TOKEN"),
        ({"GEPETTO_ROLES": '{"U1": "emperor"}'}, "GEPETTO_ROLES"),
    ],
)
def test_bad_bot_values_fail_naming_the_variable(env: dict[str, object], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_bot_settings(env)  # type: ignore[arg-type]
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}: ")


def test_missing_required_settings_name_the_variable() -> None:
    s = load_settings({})
    with pytest.raises(ConfigError, match=r"^MINER_SS58"):
        s.require_miner_identity()
    with pytest.raises(ConfigError, match=r"^VALIDATORS"):
        s.require_validators()


SECRETS = {
    "MINER_SEED": "0x" + "ab" * 32,
    "POSTGRESQL": "postgresql://u:sup3rs3cretpw@h/db",
    "REDIS_URL": "redis://:r3disp4ss@h:6379",
    "GEPETTO_SLACK_BOT_TOKEN": "xoxb-very-secret-token",
    "GEPETTO_SLACK_APP_TOKEN": "xapp-very-secret-app",
    "GEPETTO_SLACK_SIGNING_SECRET": "signing-secret-value",
}


def test_secret_values_never_appear_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    s = load_bot_settings({**SECRETS, "MINER_SS58": "5Miner"})
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").info("settings: %s / %r", s, s)
    text = repr(s) + str(s) + str(s.model_dump()) + caplog.text
    for secret in ("ab" * 32, "sup3rs3cretpw", "r3disp4ss", "very-secret", "signing-secret"):
        assert secret not in text


@pytest.mark.parametrize(
    "env",
    [
        {"MINER_SEED": "0xabcdef-my-private-seed-value"},
        {"POSTGRESQL": "mysql://u:sup3rs3cretpw@h/db"},
        {"GEPETTO_SLACK_BOT_TOKEN": ["not", "a", "string"]},
    ],
)
def test_secret_values_never_appear_in_error_text(env: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        load_bot_settings(env)  # type: ignore[arg-type]
    text = str(info.value) + repr(info.value)
    assert "my-private-seed" not in text and "sup3rs3cretpw" not in text
    assert info.value.__cause__ is None  # the pydantic error (with the input) is not chained


def test_dsn_normalisation() -> None:
    assert normalize_postgres_dsn("postgres://a@b/c") == "postgresql://a@b/c"
    assert normalize_postgres_dsn("postgresql+asyncpg://a@b/c") == "postgresql://a@b/c"
