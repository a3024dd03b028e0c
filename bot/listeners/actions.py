"""Button clicks: ack at once; the flow re-checks authorization and state in the background."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import action_ids as ids
from bot.bot_context import BotContext
from bot.flows import clicks
from bot.flows.clicks import Click
from bot.metrics import SLACK_ACK

Flow = Callable[[BotContext, Click], Coroutine[Any, Any, None]]

ROUTES: dict[str, Flow] = {
    ids.DEPLOY_ACTION_ID: clicks.show_plan,
    ids.ALERT_RETRY_ACTION_ID: clicks.show_plan,
    ids.ALERT_UNDEPLOY_ACTION_ID: clicks.show_plan,
    ids.CONFIRM_ACTION_ID: clicks.confirm,
    ids.CANCEL_ACTION_ID: clicks.cancel,
    ids.APPROVE_ACTION_ID: clicks.approve,
    ids.REJECT_ACTION_ID: clicks.reject,
    ids.ALERT_BACKOFF_ACTION_ID: clicks.alert_backoff,
    ids.PAGE_PREV_ACTION_ID: clicks.page,
    ids.PAGE_NEXT_ACTION_ID: clicks.page,
    ids.SHARE_ACTION_ID: clicks.share,
}


def _matcher(action_id: str) -> re.Pattern[str]:
    # fit_message may suffix a repeated id within one block (":2"); both mean the same button.
    return re.compile(rf"^{re.escape(action_id)}(:\d+)?$")


def _listener(bot: BotContext, flow: Flow) -> Callable[..., Awaitable[None]]:
    async def listener(ack: AsyncAck, body: dict[str, Any]) -> None:
        started = time.perf_counter()
        await ack()
        SLACK_ACK.labels(kind="action").observe(time.perf_counter() - started)
        click = Click.from_body(body)
        bot.background.spawn(flow(bot, click), name=f"click:{click.action_id}")

    return listener


def register(app: AsyncApp, bot: BotContext) -> None:
    for action_id, flow in ROUTES.items():
        app.action(_matcher(action_id))(_listener(bot, flow))
