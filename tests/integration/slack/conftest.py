"""A Slack double, and a minimal Bolt app wired to it, served in HTTP mode by aiohttp.

The app is deliberately tiny (it stands in for the real listeners built elsewhere): ``/gepetto``
acks, renders a table with ``bot.render`` and posts it; a Deploy click answers through
``response_url``; Next › re-renders the next page in place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.render import PAGE_NEXT_ACTION_ID, parse_page_value, render_slack
from gepetto_core.views import Column, RowAction, Table
from gepetto_sandbox.slack import SlackDouble

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-test-token"


def scales_table(rows: int = 45) -> Table:
    return Table(
        title="scales -g h200",
        columns=[
            Column(key="chute", title="Chute"),
            Column(key="gpus", title="GPUs", kind="int"),
            Column(key="value", title="$/h", kind="money"),
        ],
        rows=[{"chute": f"chute-{i} 😀", "gpus": 8, "value": 12.5 - i / 10} for i in range(rows)],
        data_age_seconds=42,
        actions_per_row=[
            RowAction(label="Deploy", action_id="deploy", value=f"pa-{i}", style="primary")
            for i in range(rows)
        ],
    )


def build_app(client: AsyncWebClient) -> AsyncApp:
    app = AsyncApp(client=client, signing_secret=SIGNING_SECRET)

    @app.command("/gepetto")
    async def gepetto(ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        await ack(f"on it: `{command['text']}`")
        message = render_slack(scales_table(), page_context=command["text"])
        await client.chat_postMessage(channel=command["channel_id"], **message.as_kwargs())

    @app.action("deploy")
    async def deploy(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        value = body["actions"][0]["value"]
        await respond(
            text=f"deploy {value} requested by <@{body['user']['id']}>", replace_original=False
        )

    @app.action(PAGE_NEXT_ACTION_ID)
    async def next_page(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        context, page = parse_page_value(body["actions"][0]["value"])
        message = render_slack(scales_table(), page=page, page_context=context)
        await respond(replace_original=True, **message.as_kwargs())

    return app


@pytest.fixture
async def slack() -> AsyncIterator[SlackDouble]:
    double = SlackDouble(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    await double.start()
    yield double
    await double.stop()


@pytest.fixture
async def web_client(slack: SlackDouble) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url)


@pytest.fixture
async def bolt_app(web_client: AsyncWebClient) -> AsyncApp:
    return build_app(web_client)


@pytest.fixture
async def events_url(bolt_app: AsyncApp) -> AsyncIterator[str]:
    """Our own aiohttp server with the Bolt app mounted at /slack/events (HTTP mode)."""

    async def slack_events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(
            await bolt_app.async_dispatch(await to_bolt_request(request))
        )

    server = web.Application()
    server.router.add_post("/slack/events", slack_events)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/slack/events"
    await runner.cleanup()
