"""Log redaction and formats: every route by which a secret can reach a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bot.settings import load_bot_settings
from gepetto_core.ops.logging import REDACTED, Redactor, configure_logging, secret_values

SEED = "0x" + "ab12" * 16
BOT_TOKEN = "xoxb-1234567890-abcdefABCDEF"
APP_TOKEN = "xapp-1-A0123-456-deadbeef"


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    stream = io.StringIO()
    level = logging.getLogger().level
    handler = configure_logging(
        "json", "DEBUG", secrets=[SecretStr("s3cr3t-signing")], stream=stream
    )
    logger = logging.getLogger("gepetto.test.redaction")
    yield stream, logger
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("text", "must_vanish", "must_stay"),
    [
        (f"seed={SEED}", SEED, "seed="),
        (f"token {BOT_TOKEN} ok", BOT_TOKEN, "token"),
        (f"Authorization: Bearer {APP_TOKEN}", APP_TOKEN, "Bearer"),
        ("user xoxp-11-22-33 said", "xoxp-11-22-33", "said"),
        ("postgresql://chutes:pa55word@postgres:5432/chutes", "pa55word", "@postgres:5432/chutes"),
        ("redis://:redispw@redis:6379", "redispw", "redis://:"),
        ("configured s3cr3t-signing value", "s3cr3t-signing", "value"),
    ],
)
def test_redactor_patterns(text: str, must_vanish: str, must_stay: str) -> None:
    redacted = Redactor([SecretStr("s3cr3t-signing")])(text)
    assert must_vanish not in redacted
    assert must_stay in redacted
    assert REDACTED in redacted


def test_ordinary_text_is_untouched() -> None:
    text = "deployed chute 3f2a on node gpu-1 (sha256 " + "c" * 64 + ") http://api:8000/x"
    assert Redactor([SecretStr("xy")])(text) == text  # too short to redact safely


def test_a_configured_0x_seed_is_redacted_with_and_without_its_prefix() -> None:
    redact = Redactor([SecretStr(SEED)])
    assert SEED[2:] not in redact(f"bare {SEED[2:]}")


def test_secret_values_finds_every_secret_setting() -> None:
    settings = load_bot_settings(
        {
            "MINER_SEED": SEED,
            "POSTGRESQL": "postgresql://u:dbpw@h/db",
            "GEPETTO_SLACK_BOT_TOKEN": BOT_TOKEN,
        }
    )
    values = {s.get_secret_value() for s in secret_values(settings)}
    assert {SEED, BOT_TOKEN, "postgresql://u:dbpw@h/db"} <= values


def test_message_args_exception_stack_and_extra_are_redacted(
    capture: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, logger = capture
    logger.info("connecting with %s", "postgresql://a:dbpass1@h/db")
    try:
        raise ValueError(f"bad seed {SEED}")
    except ValueError:
        logger.exception("signing failed")
    logger.warning("slack", extra={"token": BOT_TOKEN}, stack_info=True)
    logger.error("configured value %s", "s3cr3t-signing")

    output = stream.getvalue()
    for secret in ("dbpass1", SEED, BOT_TOKEN, "s3cr3t-signing"):
        assert secret not in output
    records = lines(stream)
    assert records[0]["message"] == f"connecting with postgresql://a:{REDACTED}@h/db"
    assert "ValueError: bad seed [REDACTED]" in str(records[1]["exc"])
    assert records[2]["token"] == REDACTED and "stack" in records[2]


def test_json_lines_shape(capture: tuple[io.StringIO, logging.Logger]) -> None:
    stream, logger = capture
    logger.debug("hello %d", 5, extra={"chute": "abc"})
    (record,) = lines(stream)
    assert record["message"] == "hello 5"
    assert record["level"] == "DEBUG"
    assert record["logger"] == "gepetto.test.redaction"
    assert record["chute"] == "abc"
    assert str(record["ts"]).endswith("+00:00")


def test_records_from_other_libraries_pass_the_filter_too(
    capture: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, _ = capture
    logging.getLogger("aiohttp.client").warning("GET with token %s", BOT_TOKEN)
    assert BOT_TOKEN not in stream.getvalue()


def test_bad_format_args_do_not_raise(capture: tuple[io.StringIO, logging.Logger]) -> None:
    stream, logger = capture
    logger.info("two %s %s", SEED)  # one arg missing
    assert SEED not in stream.getvalue()
    assert len(lines(stream)) == 1


def test_reconfiguring_replaces_the_handler_and_text_format_works() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "INFO", stream=first)
    handler = configure_logging("text", "WARNING", stream=second)
    try:
        logger = logging.getLogger("gepetto.test.text")
        logger.info("hidden")
        logger.warning("shown %s", BOT_TOKEN)
        assert first.getvalue() == ""
        assert "WARNING" in second.getvalue() and "shown [REDACTED]" in second.getvalue()
        assert "hidden" not in second.getvalue()
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)


def test_the_password_of_a_configured_url_is_redacted_on_its_own() -> None:
    redact = Redactor([SecretStr("postgresql://chutes:pg-pass-77@db:5432/chutes")])
    assert redact("login failed for chutes/pg-pass-77") == f"login failed for chutes/{REDACTED}"
