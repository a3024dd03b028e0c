"""Acknowledgement latency of ``/gepetto`` with 50 concurrent commands while the validator
sandbox answers every request after 5 s (``Fault(delay=5)``).

Signed slash commands go over real HTTP to the Bolt app (HTTP mode, signatures verified);
the time measured is request sent -> HTTP 200 with the ack body. The commands (``scales``)
need validator data, so their work waits on the slow validator, after the ack. Prints p50/p99
and writes them to ``bench/results.json`` under ``slack_ack`` (read-merge-write).
Target: p99 under 100 ms.

    .venv/bin/python bench/bench_ack.py [--commands 50] [--delay 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
from bittensor_wallet import Keypair
from slack_sdk.web.async_client import AsyncWebClient

from bench.results import save_results
from bot.app import build_app
from bot.bot_context import BotConfig
from bot.serve import http_server
from bot.settings import load_bot_settings
from gepetto_core.wiring import build_runtime
from gepetto_sandbox.miner import register_fleet, start_sandbox_miner
from gepetto_sandbox.slack import SlackDouble, signed_slash_command
from gepetto_sandbox.validator.faults import ROUTES, Fault

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
SEED = "0x" + "7b" * 32
SECRET = "bench-signing-secret"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run(commands: int, delay: float) -> dict[str, float]:
    miner_hotkey = Keypair.create_from_seed(SEED).ss58_address
    database = f"gepetto_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(SERVER)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ack-"))
    world = await start_sandbox_miner(
        miner_hotkey, seed=3, nodes=4, chutes=40, kubeconfig=tmp / "kubeconfig"
    )
    slack = SlackDouble(bot_token="xoxb-bench", app_token="xapp-1-bench")
    await slack.start()
    settings = load_bot_settings(
        {
            "MINER_SS58": miner_hotkey,
            "MINER_SEED": SEED,
            "VALIDATORS": json.dumps(
                {"supported": [{"hotkey": world.validator.hotkey, "api": world.validator.base_url}]}
            ),
            "POSTGRESQL": SERVER.rsplit("/", 1)[0] + f"/{database}",
            "KUBECONFIG": str(tmp / "kubeconfig"),
            "GEPETTO_EVENT_SOURCE": "none",
            "GEPETTO_SLACK_MODE": "http",
            "GEPETTO_SLACK_BOT_TOKEN": "xoxb-bench",
            "GEPETTO_SLACK_SIGNING_SECRET": SECRET,
            "GEPETTO_SLACK_API_BASE_URL": slack.base_url,
            "GEPETTO_ROLES": json.dumps({"U0OPERATOR": "operator"}),
        }
    )
    rt = await build_runtime(settings)
    await register_fleet(world, rt.inventory)
    for route in ROUTES - {"socket"}:
        world.validator.inject_fault(route, Fault(delay=delay))
    bot = build_app(
        settings,
        rt,
        client=AsyncWebClient(token="xoxb-bench", base_url=slack.base_url),
        config=BotConfig(post_interval=0.01, edit_interval=0.05),
    )
    latencies: list[float] = []
    try:
        async with (
            http_server(bot.app, "127.0.0.1", 0) as url,
            aiohttp.ClientSession() as session,
        ):

            async def one(i: int) -> None:
                request = signed_slash_command(
                    SECRET, f"scales --limit {10 + i}", response_url=slack.new_response_url()
                )
                t0 = time.perf_counter()
                async with session.post(url, data=request.body, headers=request.headers) as r:
                    await r.read()
                    assert r.status == 200, r.status
                latencies.append(time.perf_counter() - t0)

            await one(-1)  # warm-up: Bolt's one auth.test, connection setup
            latencies.clear()
            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(commands)))
            wall = time.perf_counter() - t0
            in_flight = bot.ctx.background.in_flight
    finally:
        await bot.close()
        await rt.close()
        await world.stop()
        await slack.stop()
        admin = await asyncpg.connect(SERVER)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    ms = [x * 1000 for x in latencies]
    return {
        "commands": commands,
        "validator_delay_s": delay,
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2),
        "all_acked_within_s": round(wall, 3),
        "work_still_waiting_on_validator": in_flight,
        "target_p99_ms": 100.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--delay", type=float, default=5.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.commands, args.delay))
    print(
        f"slack ack, {result['commands']} concurrent /gepetto scales, validator delay "
        f"{result['validator_delay_s']} s: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"max {result['max_ms']} ms (target p99 < 100 ms); "
        f"{result['work_still_waiting_on_validator']} commands still working after all acks"
    )
    save_results("slack_ack", result)


if __name__ == "__main__":
    main()
