"""``/gepetto``: ack within milliseconds (no database, validator or cluster before the ack)."""

from __future__ import annotations

import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.bot_context import BotContext
from bot.flows.slash import run_slash_command
from bot.metrics import SLACK_ACK
from bot.render import escape_mrkdwn

COMMAND = "/gepetto"


def register(app: AsyncApp, bot: BotContext) -> None:
    @app.command(COMMAND)
    async def gepetto(ack: AsyncAck, body: dict[str, Any]) -> None:
        started = time.perf_counter()
        text = str(body.get("text") or "").strip() or "help"
        await ack(text=f"⏳ `{COMMAND} {escape_mrkdwn(text[:200])}`")
        SLACK_ACK.labels(kind="command").observe(time.perf_counter() - started)
        bot.background.spawn(run_slash_command(bot, body), name=f"slash:{text[:40]}")
