"""Abuse of the Slack front end (HTTP mode, signed requests to our own aiohttp server) and of the
command layer: forged, replayed and stale requests; button payloads edited by hand; a viewer
trying every mutating verb; a requester approving their own request; 10,000 random command
strings. All refused cleanly and audited; no traceback reaches Slack; no secret appears in any
message or log line."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.web.async_client import AsyncWebClient

from bot.action_ids import APPROVE_ACTION_ID, CONFIRM_ACTION_ID, DEPLOY_ACTION_ID
from bot.alerts import AlertPolicy
from bot.app import SlackBot, build_app
from bot.bot_context import BotConfig
from bot.serve import http_server
from bot.settings import load_bot_settings
from gepetto_core.commands.execute import execute
from gepetto_core.commands.registry import Caller
from gepetto_core.commands.verbs import SPECS
from gepetto_core.errors import GepettoError, PermissionDeniedError
from gepetto_core.wiring import Runtime, build_runtime
from gepetto_sandbox.slack import (
    SignedRequest,
    SlackDouble,
    block_actions_payload,
    forged,
    signed_block_actions,
    signed_slash_command,
    stale,
)

from .conftest import ChaosTally
from .world import SEED, ChaosWorld, chaos_world, miner_env

pytestmark = pytest.mark.chaos

SIGNING_SECRET = "chaos-signing-secret-0123456789"
BOT_TOKEN = "xoxb-chaos-bot-token-secret"
APP_TOKEN = "xapp-1-chaos-app-token-secret"
OPS = "C0GEPETTO"
OPERATOR, VIEWER, ADMIN, ADMIN2 = "U0OPERATOR", "U0VIEWER", "U0ADMIN", "U0ADMIN2"
ROLES = {OPERATOR: "operator", VIEWER: "viewer", ADMIN: "admin", ADMIN2: "admin"}
SECRETS = (SEED[2:], SIGNING_SECRET, BOT_TOKEN, APP_TOKEN)


@dataclass
class Front:
    world: ChaosWorld
    rt: Runtime
    slack: SlackDouble
    bot: SlackBot
    url: str

    async def post(self, request: SignedRequest) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, data=request.body.encode(), headers=request.headers) as r,
        ):
            return r.status, await r.text()

    async def command(self, text: str, user: str) -> tuple[int, str]:
        url = self.slack.new_response_url()
        status, _ = await self.post(
            signed_slash_command(SIGNING_SECRET, text, user_id=user, response_url=url)
        )
        return status, url.rsplit("/", 1)[1]

    async def click(self, action_id: str, value: str, user: str) -> tuple[int, str]:
        url = self.slack.new_response_url()
        payload = block_actions_payload(
            action_id, value, user_id=user, response_url=url, channel_id=OPS
        )
        status, _ = await self.post(signed_block_actions(SIGNING_SECRET, payload))
        return status, url.rsplit("/", 1)[1]

    async def answer(self, rid: str) -> str:
        call = await self.slack.wait_for_call(
            "response_url", lambda c: c.args.get("response_id") == rid, timeout=60
        )
        return json.dumps(call.args)

    async def settle(self) -> None:
        await self.bot.ctx.background.drain(timeout=60)
        await self.bot.ctx.outbox.drain()

    def everything_sent(self) -> str:
        return "\n".join(json.dumps(c.args, default=str) for c in self.slack.calls)


@pytest.fixture
async def front(fresh_db: str, tmp_path: Path) -> AsyncIterator[Front]:
    async with chaos_world(fresh_db, tmp_path, seed=5, nodes=3, chutes=30) as world:
        world.open_targets(world.launchable())
        slack = SlackDouble(
            bot_token=BOT_TOKEN,
            app_token=APP_TOKEN,
            channels={OPS: "gepetto-ops"},
            users={u: {"name": u.lower()} for u in ROLES},
        )
        await slack.start()
        env = miner_env(
            world.sandbox,
            world.dsn,
            GEPETTO_SLACK_MODE="http",
            GEPETTO_SLACK_BOT_TOKEN=BOT_TOKEN,
            GEPETTO_SLACK_APP_TOKEN=APP_TOKEN,
            GEPETTO_SLACK_SIGNING_SECRET=SIGNING_SECRET,
            GEPETTO_SLACK_API_BASE_URL=slack.base_url,
            GEPETTO_SLACK_ALERT_CHANNEL=OPS,
            GEPETTO_ROLES=json.dumps(ROLES),
        )
        settings = load_bot_settings(env)
        rt = await build_runtime(settings, clock=world.clock)
        config = BotConfig(
            post_interval=0.01,
            edit_interval=0.05,
            deploy_poll_seconds=0.05,
            alert_policy=AlertPolicy(post_interval=0.01, edit_interval=0.05),
        )
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url)
        bot = build_app(settings, rt, client=client, config=config, clock=world.clock)
        try:
            async with http_server(bot.app, "127.0.0.1", 0) as url:
                yield Front(world, rt, slack, bot, url)
                await bot.ctx.background.drain(timeout=60)
        finally:
            await bot.close()
            await rt.close()
            await slack.stop()


async def test_forged_replayed_stale_and_edited_requests(
    front: Front, tally: ChaosTally, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = signed_slash_command(SIGNING_SECRET, "nodes", user_id=OPERATOR)
    for bad in (forged(good), stale(SIGNING_SECRET, good, age_seconds=600)):
        status, _ = await front.post(bad)
        tally.expect(status == 401, f"a forged/stale request was accepted ({status})")
        tally.fault("slack: forged or stale signature")

    # a deploy offer confirmed once, then the same signed click replayed three times
    request = await _free_deploy(front)
    offer = await front.bot.ctx.pending.create(
        verb="deploy",
        arguments={"argv": ["deploy", "-c", request[0], "-s", request[1], "--no-wait"]},
        requested_by=OPERATOR,
        policy="confirm",
        ttl=__import__("datetime").timedelta(minutes=15),
    )
    url = front.slack.new_response_url()
    payload = block_actions_payload(
        CONFIRM_ACTION_ID, offer.action_id, user_id=OPERATOR, response_url=url, channel_id=OPS
    )
    click = signed_block_actions(SIGNING_SECRET, payload)
    statuses = [(await front.post(click))[0] for _ in range(4)]
    await front.settle()
    tally.fault("slack: replayed signed click", 3)
    tally.expect(all(s == 200 for s in statuses), f"replays not acked: {statuses}")
    deployments = await front.rt.inventory.list_deployments()
    tally.expect(len(deployments) == 1, f"a replayed click deployed {len(deployments)} times")

    # button values edited by hand: unknown, malformed, huge, another verb's id, SQL
    edited = [
        "pa_" + "0" * 20,
        "'; DROP TABLE deployments; --",
        "x" * 5000,
        offer.action_id + "x",
        "",
        '{"argv": ["undeploy", "--all-on", "h100-0"]}',
    ]
    for value in edited:
        for action_id in (DEPLOY_ACTION_ID, CONFIRM_ACTION_ID, APPROVE_ACTION_ID, "gepetto_bogus"):
            status, _ = await front.click(action_id, value, OPERATOR)
            tally.fault("slack: hand-edited button payload")
            tally.expect(status in (200, 404), f"edited click answered {status}")
    await front.settle()
    tally.expect(
        len(await front.rt.inventory.list_deployments()) == 1, "an edited click changed something"
    )
    tally.expect(front.bot.ctx.background.failures == 0, "a click crashed a background task")
    _no_leaks(front, tally, caplog)
    tally.run("slack: forged, replayed, stale, edited")


async def test_viewer_tries_every_mutating_verb(
    front: Front, tally: ChaosTally, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    chute, server = await _free_deploy(front)
    server_name = (await front.rt.inventory.get_server(server)).name  # type: ignore[union-attr]
    argv = {
        "recycle": "recycle",
        "deploy": f"deploy -c {chute} -s {server_name}",
        "undeploy": "undeploy -i 0123456789abcdef",
        "undeploy --all-on": f"undeploy --all-on {server_name}",
        "backoff clear": "backoff clear",
        "autoscaler pause": "autoscaler pause",
        "autoscaler resume": "autoscaler resume",
        "autoscaler shadow": "autoscaler shadow",
        "lock": f"lock {server_name}",
        "unlock": f"unlock {server_name}",
    }
    mutations = {key for key, spec in SPECS.items() if spec.mutation}
    assert set(argv) == mutations, "a mutating verb is not tried"
    for verb, text in argv.items():
        status, rid = await front.command(text, VIEWER)
        answer = await front.answer(rid)
        tally.fault("slack: viewer runs a mutating verb")
        refused = "needs the" in answer or "not allowed" in answer
        tally.expect(status == 200 and refused, f"viewer {verb}: {answer[:300]}")
    await front.settle()
    denied = [a for a in await front.rt.state.list_audit(actor=VIEWER) if not a.allowed]
    tally.expect(
        {a.verb for a in denied} == set(argv),
        f"refusals not all audited: {[a.verb for a in denied]}",
    )
    tally.expect(await front.rt.inventory.list_deployments() == [], "a viewer changed something")

    # the two-person rule: the requester cannot approve their own request
    caller = Caller(actor=ADMIN, source="slack")
    with pytest.raises(PermissionDeniedError):
        await execute(argv["undeploy --all-on"].split(), caller, front.rt, confirmed=True,
                      approved_by=ADMIN)  # fmt: skip
    tally.fault("slack: self-approval")
    audit = [a for a in await front.rt.state.list_audit(actor=ADMIN) if not a.allowed]
    tally.expect(audit and "other than the requester" in (audit[0].result or ""), "not audited")
    _no_leaks(front, tally, caplog)
    tally.run("slack: viewer and self-approval")


VOCABULARY = [
    "deploy", "undeploy", "recycle", "lock", "unlock", "nodes", "pods", "insts", "chutes",
    "backoff", "clear", "list", "autoscaler", "pause", "resume", "shadow", "status", "audit",
    "why", "help", "-c", "-s", "-i", "--all-on", "--force", "--dry-run", "--json", "--yes",
    "--for", "10m", "-1", "h100-0", "0123456789abcdef", "'", '"', "`", "\\", "\x00", "$(id)",
    ";", "|", "&&", "*", "<script>", "🔥", "--", "-", "=", "%s", "{}", "\n", "\t",
]  # fmt: skip


async def test_ten_thousand_random_command_strings(front: Front, tally: ChaosTally) -> None:
    """Through the command layer for a viewer and an operator (unconfirmed): every answer is a
    result or a GepettoError with a one-line message; nothing is applied."""
    callers = [Caller(actor=VIEWER, source="slack"), Caller(actor=OPERATOR, source="slack")]
    loop = asyncio.get_running_loop()
    problems: list[str] = []
    seen = 0

    words = st.lists(st.sampled_from(VOCABULARY), max_size=6).map(" ".join)
    texts = st.one_of(st.text(max_size=80), words)

    async def run_one(text: str, caller: Caller) -> None:
        try:
            await execute(text, caller, front.rt)
        except GepettoError as e:
            if "\n" in str(e).strip() or "Traceback" in str(e):
                problems.append(f"{text!r}: {e!s:.200}")
        except Exception as e:  # anything else would reach Slack as a crash
            problems.append(f"{text!r}: {type(e).__name__}: {e!s:.200}")

    # hypothesis drives a sync test body; each example runs on this loop from a worker thread
    @settings(
        max_examples=5000,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(texts)
    def examples(text: str) -> None:
        nonlocal seen
        for caller in callers:
            asyncio.run_coroutine_threadsafe(run_one(text, caller), loop).result(60)
            seen += 1

    await asyncio.to_thread(examples)
    tally.run("abuse: random command strings", seen)
    tally.expect(seen >= 10_000, f"only {seen} command strings tried")
    tally.expect(not problems, f"unclean answers: {problems[:5]}")
    tally.expect(await front.rt.inventory.list_deployments() == [], "a random string deployed")


async def test_random_strings_over_slack_reach_no_traceback(
    front: Front, tally: ChaosTally, caplog: pytest.LogCaptureFixture
) -> None:
    """A sample of hostile strings through the signed HTTP path: each gets a clean answer."""
    caplog.set_level(logging.DEBUG)
    samples = [
        " ".join(VOCABULARY[i : i + k]) for k in (1, 2, 3) for i in range(0, len(VOCABULARY), 3)
    ]
    for text in samples:
        status, rid = await front.command(text, VIEWER)
        tally.expect(status == 200, f"{text!r} answered {status}")
        await front.answer(rid)
    await front.settle()
    tally.run("abuse: hostile strings over signed Slack HTTP", len(samples))
    tally.expect(front.bot.ctx.background.failures == 0, "a command crashed a background task")
    _no_leaks(front, tally, caplog)


def _no_leaks(front: Front, tally: ChaosTally, caplog: pytest.LogCaptureFixture) -> None:
    sent = front.everything_sent()
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    tally.expect("Traceback" not in sent, "a traceback reached Slack")
    for secret in SECRETS:
        tally.expect(secret not in sent, "a secret reached Slack")
        tally.expect(secret not in logged, "a secret reached a log line")
    tally.expect("eyJ" not in sent, "a launch token (JWT) reached Slack")


async def _free_deploy(front: Front) -> tuple[str, str]:
    from .world import free_pair

    request = await free_pair(front.rt, world=front.world)
    assert request is not None
    return request.chute_id, request.server_id
