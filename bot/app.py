"""The Slack app: a Bolt ``AsyncApp`` wired to gepetto's runtime. Thin on purpose.

    slack = build_app(settings, runtime)          # no network call here
    await start_socket_mode(slack, settings)      # or add_http_routes(web_app, slack.app)
    ...
    await slack.close()

Listeners (``bot.listeners``) ack first and run the work in the background (``bot.flows``).
The alert service is exposed for the loops: ``on_reconcile`` and the autoscaler's ``on_round``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.alert_service import AlertService
from bot.approvals import PendingActions
from bot.authz import Authorizer, GroupDirectory, is_group_id
from bot.background import Background
from bot.bot_context import BotConfig, BotContext, Executor
from bot.listeners import actions, commands, home
from bot.outbox import SlackOutbox
from bot.pictures import DailyDigest
from bot.settings import BotSettings
from gepetto_core.clock import utcnow
from gepetto_core.commands import execute as command_execute
from gepetto_core.errors import ConfigError
from gepetto_core.wiring import Runtime

log = logging.getLogger(__name__)


@dataclass
class SlackBot:
    app: AsyncApp
    ctx: BotContext
    # #26: the daily report in the alert channel (GEPETTO_DIGEST_HOUR), told of every round.
    digest: DailyDigest | None = None

    @property
    def alerts(self) -> AlertService:
        return self.ctx.alerts

    async def close(self) -> None:
        await self.ctx.background.close()
        await self.ctx.outbox.close()


def web_client(settings: BotSettings) -> AsyncWebClient:
    if settings.slack_bot_token is None:
        raise ConfigError("GEPETTO_SLACK_BOT_TOKEN", "is required to run the Slack bot")
    token = settings.slack_bot_token.get_secret_value()
    if settings.slack_api_base_url:
        return AsyncWebClient(token=token, base_url=settings.slack_api_base_url)
    return AsyncWebClient(token=token)


def build_app(
    settings: BotSettings,
    runtime: Runtime,
    *,
    client: AsyncWebClient | None = None,
    config: BotConfig | None = None,
    execute: Executor = command_execute,
    clock: Callable[[], datetime] = utcnow,
) -> SlackBot:
    """The Bolt app with every listener registered. Makes no network call."""
    config = config or BotConfig()
    client = client or web_client(settings)
    http_mode = settings.slack_mode == "http"
    if http_mode and settings.slack_signing_secret is None:
        raise ConfigError("GEPETTO_SLACK_SIGNING_SECRET", "is required in HTTP mode")
    signing_secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    )
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        # Socket Mode payloads arrive over the authenticated socket: there is nothing to verify.
        request_verification_enabled=http_mode,
        process_before_response=config.process_before_response,
        logger=log,
    )
    outbox = SlackOutbox(
        client, post_interval=config.post_interval, edit_interval=config.edit_interval
    )
    pending = PendingActions(runtime.state, clock=clock)
    groups = GroupDirectory(client, [k for k in settings.roles if is_group_id(k)])
    ctx = BotContext(
        settings=settings,
        runtime=runtime,
        client=client,
        outbox=outbox,
        background=Background(),
        authz=Authorizer(settings.roles, settings.slack_allowed_channels, groups),
        pending=pending,
        alerts=AlertService(
            runtime.state,
            runtime.inventory,
            outbox,
            pending,
            settings.slack_alert_channel,
            policy=config.alert_policy,
            failure_window=timedelta(minutes=settings.failure_window_minutes),
            digest_interval=config.digest_interval,
            clock=clock,
        ),
        execute=execute,
        config=config,
        clock=clock,
    )
    commands.register(app, ctx)
    actions.register(app, ctx)
    home.register(app, ctx)
    return SlackBot(app, ctx, _daily_digest(ctx, settings))


def _daily_digest(ctx: BotContext, settings: BotSettings) -> DailyDigest | None:
    """The daily fleet report in the alert channel, when an hour and a channel are set."""
    if settings.digest_hour is None or not settings.slack_alert_channel:
        return None
    return DailyDigest(ctx, settings.digest_hour, settings.slack_alert_channel)
