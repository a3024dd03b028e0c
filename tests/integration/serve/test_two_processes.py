"""Two real `gepetto serve` processes against the same cluster sandbox, validator sandbox and
database: exactly one runs the loops (it deploys), the standby takes over the lease when the
leader is killed, and SIGTERM stops a process cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from bittensor_wallet import Keypair

from gepetto_core.adapters.pg import create_pool
from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.adapters.pg_migrations import upgrade
from gepetto_sandbox.cluster import PodTimings
from gepetto_sandbox.miner import PodBridge, SandboxMiner, register_fleet, start_sandbox_miner

SEED = "0x" + "7a" * 32
MINER = Keypair.create_from_seed(SEED).ss58_address
LEASE_SECONDS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def world(fresh_db: str, tmp_path: Path) -> AsyncIterator[tuple[SandboxMiner, str]]:
    kubeconfig = tmp_path / "kubeconfig"
    timings = PodTimings(start_seconds=0.1, ready_seconds=0.1, termination_seconds=0.1)
    w = await start_sandbox_miner(
        MINER, seed=5, nodes=4, chutes=40, timings=timings, kubeconfig=kubeconfig
    )
    pool = await create_pool(fresh_db)
    async with pool.acquire() as conn:
        await upgrade(conn)
    await register_fleet(w, PgInventory(pool))
    await pool.close()
    bridge = PodBridge(w)
    bridge.start()
    try:
        yield w, fresh_db
    finally:
        await bridge.stop()
        await w.stop()


def env_for(w: SandboxMiner, dsn: str, identity: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEPETTO_", "MINER_"))}
    env.update(
        MINER_SS58=MINER,
        MINER_SEED=SEED,
        VALIDATORS=json.dumps(
            {
                "supported": [
                    {
                        "hotkey": w.validator.hotkey,
                        "api": w.validator.base_url,
                        "socket": w.validator.base_url,
                    }
                ]
            }
        ),
        POSTGRESQL=dsn,
        KUBECONFIG=str(w.kubeconfig),
        GEPETTO_EVENT_SOURCE="socketio",
        GEPETTO_LEADER_ELECTION="true",
        GEPETTO_LEASE_DURATION_SECONDS=str(LEASE_SECONDS),
        GEPETTO_LEASE_RENEW_SECONDS="1",
        GEPETTO_LEASE_IDENTITY=identity,
        GEPETTO_HTTP_HOST="127.0.0.1",
        GEPETTO_HTTP_PORT=str(port),
        GEPETTO_SYNC_INTERVAL_SECONDS="2",
        GEPETTO_RECONCILE_INTERVAL_SECONDS="3",
        GEPETTO_AUTOSCALE_INTERVAL_SECONDS="2",
        GEPETTO_LOG_FORMAT="json",
    )
    return env


async def start(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.main",
        "serve",
        env=env,
        stdout=log.open("wb"),
        stderr=asyncio.subprocess.STDOUT,
    )


async def readiness(http: aiohttp.ClientSession, port: int) -> dict[str, object] | None:
    try:
        async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            body: dict[str, object] = await resp.json()
            return body
    except aiohttp.ClientError:
        return None


async def leaders(http: aiohttp.ClientSession, ports: dict[str, int]) -> set[str]:
    found = set()
    for name, port in ports.items():
        body = await readiness(http, port)
        if body is not None and body.get("leader") is True:
            found.add(name)
    return found


async def until(predicate: Callable[[], Awaitable[bool]], seconds: float) -> None:
    """Poll a condition of other processes (nothing here can be awaited as an event)."""
    async with asyncio.timeout(seconds):
        while True:
            if await predicate():
                return
            await asyncio.sleep(0.2)


async def test_one_leader_runs_the_loops_and_the_standby_takes_over(
    world: tuple[SandboxMiner, str], tmp_path: Path
) -> None:
    w, dsn = world
    ports = {"a": free_port(), "b": free_port()}
    procs = {
        name: await start(env_for(w, dsn, name, port), tmp_path / f"{name}.log")
        for name, port in ports.items()
    }
    try:
        async with aiohttp.ClientSession() as http:

            async def one_leader() -> bool:
                return len(await leaders(http, ports)) == 1

            await until(one_leader, 60)
            [leader] = await leaders(http, ports)
            standby = "b" if leader == "a" else "a"
            lease = w.cluster.objects("leases", "chutes")
            assert lease and lease[0]["spec"]["holderIdentity"] == leader

            async def deployed() -> bool:
                return bool(w.cluster.objects("jobs", "chutes", "chutes/chute=true"))

            await until(deployed, 60)  # the leader's autoscaler placed chutes
            wanted = (
                'gepetto_deploys_total{outcome="deployed"}',
                "gepetto_leader 1.0",
                "gepetto_kube_request_seconds_count",
                "gepetto_loop_runs_total",
                "gepetto_validator_request_seconds_count",
            )

            async def metrics_recorded() -> bool:
                # the round's outcomes are counted when the whole round has finished
                async with http.get(f"http://127.0.0.1:{ports[leader]}/metrics") as resp:
                    text = await resp.text()
                return all(name in text for name in wanted)

            await until(metrics_recorded, 60)

            [before] = w.cluster.objects("leases", "chutes")
            procs[leader].send_signal(signal.SIGKILL)
            await procs[leader].wait()

            async def standby_leads() -> bool:
                return await leaders(http, {standby: ports[standby]}) == {standby}

            # How soon the standby may take over is the pure rule's business, tested with `now`
            # given (tests/unit/ops/test_leader_plan.py); a wall-clock bound here would measure
            # the machine's load. Here: it takes the lease, in the term after the leader's.
            await until(standby_leads, 60)
            [after] = w.cluster.objects("leases", "chutes")
            term = before["spec"]["leaseTransitions"] + (
                before["spec"]["holderIdentity"] != standby
            )
            assert (after["spec"]["holderIdentity"], after["spec"]["leaseTransitions"]) == (
                standby,
                term,
            ), (before["spec"], after["spec"])

            procs[standby].send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(procs[standby].wait(), 60) == 0
    finally:
        for p in procs.values():
            if p.returncode is None:
                p.kill()
                await p.wait()
    for name in ports:
        text = (tmp_path / f"{name}.log").read_text()
        assert SEED[2:] not in text  # the hotkey seed never reaches a log line
