"""The Slack bot's settings: gepetto's core settings plus the `GEPETTO_SLACK_*` variables.

The core (`gepetto_core.config.Settings`) knows nothing of Slack; the bot's front end reads this
subclass instead, from the same environment, with the same rule: a missing or wrong value is a
ConfigError naming the variable, never echoing a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from gepetto_core.config import Settings, load_settings_as


class BotSettings(Settings):
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_mode: Literal["socket", "http"] = "socket"
    slack_api_base_url: str | None = None  # tests and the demo point the SDK at a double
    slack_alert_channel: str | None = None
    slack_allowed_channels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # UTC hour of the daily fleet report in the alert channel; unset = no digest.
    digest_hour: int | None = Field(default=None, ge=0, le=23)

    @field_validator("slack_allowed_channels", mode="before")
    @classmethod
    def _parse_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def load_bot_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> BotSettings:
    """Read the bot's settings from `environ` (default: the process environment)."""
    return load_settings_as(BotSettings, environ, **overrides)
