"""The App Home tab (#26): publish on ``app_home_opened``; its buttons change the autoscaler
mode. Ack at once; the work runs in the background like every other listener."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError

from bot.authz import decide
from bot.bot_context import BotContext
from bot.flows.common import audit_denied
from bot.home import HOME_COMMANDS, publish_home
from bot.metrics import SLACK_ACK
from gepetto_core.commands import parse, spec_for
from gepetto_core.errors import GepettoError
from gepetto_core.render_text import render_text

log = logging.getLogger(__name__)


async def refresh(bot: BotContext, user_id: str, notice: str | None = None) -> None:
    try:
        await publish_home(bot, user_id, notice)
    except (SlackApiError, GepettoError) as e:
        log.info("home tab not published for %s: %s", user_id, e)


async def home_click(bot: BotContext, user_id: str, action_id: str) -> str:
    """Run the button's command for the clicker, role-checked now (not when the tab was
    drawn: a role may have been taken away since). Returns the line shown on the tab."""
    command = parse(HOME_COMMANDS[action_id])
    spec = spec_for(command)
    caller = await bot.authz.caller(user_id, None)
    # The Home tab is the user's own surface, not a channel: roles decide, not the channel
    # allow-list.
    decision = decide(caller, spec, bot.authz.roles, ())
    if not decision.allowed:
        await audit_denied(bot, caller, spec.key, {"argv": list(command.argv)}, decision.reason)
        return f"Not done: {decision.reason}"
    try:
        result = await bot.execute(command, caller, bot.runtime, confirmed=True)
    except GepettoError as e:
        return f"Not done: {e}"
    return render_text(result)


def register(app: AsyncApp, bot: BotContext) -> None:
    @app.event("app_home_opened")
    async def opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        user_id = str(event.get("user") or "")
        bot.background.spawn(refresh(bot, user_id), name=f"home:{user_id}")

    async def clicked(ack: AsyncAck, body: dict[str, Any]) -> None:
        started = time.perf_counter()
        await ack()
        SLACK_ACK.labels(kind="action").observe(time.perf_counter() - started)
        user_id = str((body.get("user") or {}).get("id", ""))
        action_id = str((body.get("actions") or [{}])[0].get("action_id", ""))

        async def work() -> None:
            notice = await home_click(bot, user_id, action_id)
            await refresh(bot, user_id, notice)

        bot.background.spawn(work(), name=f"home-click:{action_id}")

    for action_id in HOME_COMMANDS:
        app.action(action_id)(clicked)
