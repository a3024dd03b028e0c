"""History retention (a core setting) and the daily digest hour (a bot setting)."""

from __future__ import annotations

import pytest

from bot.settings import load_bot_settings
from gepetto_core.config import load_settings
from gepetto_core.errors import ConfigError


def test_defaults_keep_14_days_and_post_no_digest() -> None:
    assert load_settings({}).history_retention_days == 14
    assert load_bot_settings({}).digest_hour is None


def test_values_are_read_and_checked() -> None:
    s = load_bot_settings({"GEPETTO_HISTORY_RETENTION_DAYS": "3", "GEPETTO_DIGEST_HOUR": "7"})
    assert s.history_retention_days == 3 and s.digest_hour == 7
    with pytest.raises(ConfigError, match="DIGEST_HOUR"):
        load_bot_settings({"GEPETTO_DIGEST_HOUR": "24"})
    with pytest.raises(ConfigError, match="HISTORY_RETENTION_DAYS"):
        load_settings({"GEPETTO_HISTORY_RETENTION_DAYS": "0"})
