"""The Slack bot against a whole sandbox miner: real PostgreSQL, the validator and cluster
sandboxes over HTTP, the Slack double through the real slack_sdk client, and the Bolt app served
in HTTP mode (signed requests) by our own aiohttp server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from bittensor_wallet import Keypair
from slack_sdk.web.async_client import AsyncWebClient

from bot.alerts import AlertPolicy
from bot.app import SlackBot, build_app
from bot.bot_context import BotConfig
from bot.serve import http_server
from bot.settings import BotSettings, load_bot_settings
from gepetto_core.models.validator import is_launch_config_version
from gepetto_core.wiring import Runtime, build_runtime
from gepetto_sandbox.clock import ShiftedClock
from gepetto_sandbox.cluster import PodTimings
from gepetto_sandbox.miner import PodBridge, SandboxMiner, register_fleet, start_sandbox_miner
from gepetto_sandbox.slack import (
    RecordedCall,
    SignedRequest,
    SlackDouble,
    block_actions_payload,
    signed_block_actions,
    signed_slash_command,
)

T = TypeVar("T")
SEED = "0x" + "6a" * 32
MINER = Keypair.create_from_seed(SEED).ss58_address
FAST = PodTimings(start_seconds=0.05, ready_seconds=0.05, termination_seconds=0.05)
SIGNING_SECRET = "bot-test-signing-secret"
BOT_TOKEN = "xoxb-bot-test"
APP_TOKEN = "xapp-1-bot-test"
OPS = "C0GEPETTO"
ALERTS = "C0ALERTS"
OPERATOR, VIEWER, ADMIN, ADMIN2 = "U0OPERATOR", "U0VIEWER", "U0APPROVER", "U0ADMIN2"
ROLES = {OPERATOR: "operator", VIEWER: "viewer", "S0ADMINS": "admin", ADMIN2: "admin"}


Clock = ShiftedClock


@dataclass
class World:
    miner: SandboxMiner
    rt: Runtime
    settings: BotSettings
    slack: SlackDouble
    bot: SlackBot
    url: str
    clock: Clock

    def launchable(self, chute: dict[str, Any]) -> bool:
        types = {n.gpu_type for n in self.miner.fleet if not n.tee}
        sel = chute["node_selector"]
        return bool(
            chute["public"]
            and chute["cords"]
            and not chute.get("tee")
            and is_launch_config_version(chute["chutes_version"])
            and set(sel["supported_gpus"]) & types
            and sel["gpu_count"] <= 2
        )

    def launch_chute(self) -> dict[str, Any]:
        """A public chute that fits a non-TEE node, with room at the validator."""
        for chute in sorted(
            self.miner.validator.world.chutes.values(), key=lambda c: c["chute_id"]
        ):
            if self.launchable(chute):
                self.miner.validator.set_target(chute["chute_id"], 20)
                return chute
        raise AssertionError("the generated catalog has no such chute")

    def server_for(self, chute: dict[str, Any]) -> Any:
        for node in self.miner.fleet:
            if not node.tee and node.gpu_type in chute["node_selector"]["supported_gpus"]:
                return node
        raise AssertionError("no fleet node fits")

    async def post(self, request: SignedRequest) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, data=request.body.encode(), headers=request.headers) as r,
        ):
            return r.status, await r.text()

    async def command(self, text: str, user: str = OPERATOR) -> tuple[int, str, str]:
        """Send `/gepetto text`; returns (status, ack body, response_url id)."""
        url = self.slack.new_response_url()
        status, body = await self.post(
            signed_slash_command(SIGNING_SECRET, text, user_id=user, response_url=url)
        )
        return status, body, url.rsplit("/", 1)[1]

    async def click(
        self, action_id: str, value: str, user: str = OPERATOR, message_ts: str | None = None
    ) -> tuple[int, str]:
        """Click a button; returns (status, response_url id of this click)."""
        url = self.slack.new_response_url()
        payload = block_actions_payload(
            action_id,
            value,
            user_id=user,
            response_url=url,
            channel_id=OPS,
            **({"message_ts": message_ts} if message_ts else {}),
        )
        status, _ = await self.post(signed_block_actions(SIGNING_SECRET, payload))
        return status, url.rsplit("/", 1)[1]

    async def answer(self, rid: str, timeout: float = 60.0) -> RecordedCall:  # noqa: ASYNC109
        """The (first) response_url message sent back for the request with this id."""
        return await self.slack.wait_for_call(
            "response_url", lambda c: c.args.get("response_id") == rid, timeout=timeout
        )

    async def settle(self) -> None:
        await self.bot.ctx.background.drain(timeout=60)
        await self.bot.ctx.outbox.drain()


def buttons(call: RecordedCall) -> list[dict[str, Any]]:
    return [
        e for b in call.args.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]
    ]


def text_of(call: RecordedCall) -> str:
    return json.dumps(call.args.get("blocks") or []) + str(call.args.get("text", ""))


async def eventually(check: Callable[[], Awaitable[T]], seconds: float = 60.0) -> T:
    async with asyncio.timeout(seconds):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.05)


@pytest.fixture
async def world(fresh_db: str, tmp_path: Path) -> AsyncIterator[World]:
    kubeconfig = tmp_path / "kubeconfig"
    miner = await start_sandbox_miner(
        MINER, seed=5, nodes=4, chutes=40, timings=FAST, kubeconfig=kubeconfig
    )
    slack = SlackDouble(
        bot_token=BOT_TOKEN,
        app_token=APP_TOKEN,
        channels={OPS: "gepetto-ops", ALERTS: "gepetto-alerts"},
        users={u: {"name": u.lower()} for u in (OPERATOR, VIEWER, ADMIN, ADMIN2)},
        usergroups={"S0ADMINS": [ADMIN]},
    )
    await slack.start()
    settings = load_bot_settings(
        {
            "MINER_SS58": MINER,
            "MINER_SEED": SEED,
            "VALIDATORS": json.dumps(
                {"supported": [{"hotkey": miner.validator.hotkey, "api": miner.validator.base_url}]}
            ),
            "POSTGRESQL": fresh_db,
            "KUBECONFIG": str(kubeconfig),
            "GEPETTO_EVENT_SOURCE": "none",
            "CHUTE_SHUTDOWN_TIME_SECONDS": "1",
            "GEPETTO_SLACK_MODE": "http",
            "GEPETTO_SLACK_BOT_TOKEN": BOT_TOKEN,
            "GEPETTO_SLACK_APP_TOKEN": APP_TOKEN,
            "GEPETTO_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "GEPETTO_SLACK_API_BASE_URL": slack.base_url,
            "GEPETTO_SLACK_ALERT_CHANNEL": ALERTS,
            "GEPETTO_ROLES": json.dumps(ROLES),
        }
    )
    clock = Clock()
    rt = await build_runtime(settings, clock=clock)
    await register_fleet(miner, rt.inventory)
    bridge = PodBridge(miner)
    bridge.start()
    report = await rt.reconciler.run_once()
    assert report.plan.complete, report.plan.problems
    config = BotConfig(
        post_interval=0.01,
        edit_interval=0.05,
        deploy_poll_seconds=0.05,
        alert_policy=AlertPolicy(post_interval=0.01, edit_interval=0.05),
    )
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url)
    bot = build_app(settings, rt, client=client, config=config, clock=clock)
    try:
        async with http_server(bot.app, "127.0.0.1", 0) as url:
            yield World(miner, rt, settings, slack, bot, url, clock)
            await bot.ctx.background.drain(timeout=60)
    finally:
        await bot.close()
        await bridge.stop()
        await rt.close()
        await miner.stop()
        await slack.stop()
