"""Connect the Slack app: Socket Mode (default; no public URL) or HTTP at ``/slack/events``.

HTTP mode mounts the Bolt app in an aiohttp application (ours, beside ``/healthz`` or alone);
Bolt verifies every request's ``v0`` signature and refuses ones older than five minutes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.app import SlackBot
from bot.settings import BotSettings
from gepetto_core.errors import ConfigError

EVENTS_PATH = "/slack/events"


def add_http_routes(web_app: web.Application, app: AsyncApp, path: str = EVENTS_PATH) -> None:
    async def slack_events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    web_app.router.add_post(path, slack_events)


@contextlib.asynccontextmanager
async def http_server(app: AsyncApp, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``/slack/events`` until the block exits; yields the events URL."""
    web_app = web.Application()
    add_http_routes(web_app, app)
    runner = web.AppRunner(web_app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}{EVENTS_PATH}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def socket_mode(
    slack: SlackBot, settings: BotSettings
) -> AsyncIterator[AsyncSocketModeHandler]:
    """Connected to Slack over Socket Mode until the block exits."""
    if settings.slack_app_token is None:
        raise ConfigError("GEPETTO_SLACK_APP_TOKEN", "is required in Socket Mode (xapp-...)")
    handler = AsyncSocketModeHandler(
        slack.app, app_token=settings.slack_app_token.get_secret_value()
    )
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        yield handler
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
