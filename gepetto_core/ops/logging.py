"""Log configuration: text or JSON lines on stderr, with secrets redacted from every record.

`configure_logging("json", "INFO", secrets=secret_values(settings))` installs one handler on the
root logger. Its `RedactingFilter` runs on every record that reaches the handler (a handler
filter, so records propagated from any library logger pass through it too) and rewrites the
message, the exception and stack text, and string `extra` fields before any formatter sees them.

What is redacted:
- every configured secret value (hotkey seed, Slack tokens, database/Redis URLs, ...), for a
  `0x`-prefixed value also its bare hex form, and for a URL also its password alone;
- Slack tokens (`xoxb-`, `xoxa-`, `xoxp-`, ... and app-level `xapp-`) even when not configured;
- `0x` + 64 hex digits (an sr25519 seed in the form chutes-miner stores it);
- the password of any `scheme://user:password@host` URL.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4  # shorter configured values would redact ordinary words

_SLACK_TOKEN = re.compile(r"\bx(?:ox[abposer]|app)-[A-Za-z0-9-]+")
_HEX_SEED = re.compile(r"\b0x[0-9a-fA-F]{64}\b")
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)")

# LogRecord's own attributes; anything else on a record came in through `extra=`.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

_HANDLER_NAME = "gepetto"


def _url_password(value: str) -> str | None:
    if "://" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


class Redactor:
    """Replaces secrets in text. Pure: no logging state."""

    def __init__(self, secrets: Iterable[str | SecretStr | None] = ()) -> None:
        values: set[str] = set()
        for secret in secrets:
            raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            if not raw or len(raw) < MIN_SECRET_LENGTH:
                continue
            values.add(raw)
            if raw.startswith("0x") and len(raw) - 2 >= MIN_SECRET_LENGTH:
                values.add(raw[2:])
            password = _url_password(raw)
            if password and len(password) >= MIN_SECRET_LENGTH:
                values.add(password)  # a DB/Redis URL's password may be quoted on its own
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(values, key=len, reverse=True)
        self._configured = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def __call__(self, text: str) -> str:
        if self._configured is not None:
            text = self._configured.sub(REDACTED, text)
        text = _SLACK_TOKEN.sub(REDACTED, text)
        text = _HEX_SEED.sub(REDACTED, text)
        return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites a record so no secret reaches a formatter. Never drops a record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor
        self._exception_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        # Render the message with its args first: a secret may sit in either.
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: keep both, as logging would report them
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            # Formatters reuse exc_text when it is set, so the raw traceback is never rendered.
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_FIELDS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, exc/stack, and `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in entry:
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def secret_values(settings: BaseModel) -> list[SecretStr]:
    """Every SecretStr field of a settings object that has a value."""
    found: list[SecretStr] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.append(value)
    return found


def configure_logging(
    format: Literal["text", "json"],
    level: str | int = "INFO",
    *,
    secrets: Iterable[str | SecretStr | None] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to `stream` (stderr) as text or JSON lines, secrets redacted.

    Calling it again replaces the handler it installed before (not handlers others added).
    Returns the handler so tests (and the wiring) can inspect or remove it."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RedactingFilter(Redactor(secrets)))
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
