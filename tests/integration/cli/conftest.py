"""A sandbox miner for CLI tests: real PostgreSQL, the validator and cluster sandboxes listening
on 127.0.0.1 in this test process, and the real `gepetto` entry point run as a subprocess
against them (its environment points at the sandboxes exactly as a deployment's would).

One world per module keeps the run short: each CLI call is a fresh process that connects,
migrates (a no-op) and syncs, so tests compare against the state they set up themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from bittensor_wallet import Keypair

from gepetto_core.config import load_settings
from gepetto_core.models.validator import is_launch_config_version
from gepetto_core.wiring import Runtime, build_runtime
from gepetto_sandbox.cluster import PodTimings
from gepetto_sandbox.cluster.sandbox import kubeconfig_dict
from gepetto_sandbox.miner import PodBridge, SandboxMiner, register_fleet, start_sandbox_miner

SEED = "0x" + "7c" * 32
MINER = Keypair.create_from_seed(SEED).ss58_address
FAST = PodTimings(start_seconds=0.05, ready_seconds=0.05, termination_seconds=0.05)
GEPETTO = Path(sys.executable).with_name("gepetto")
CLI_TIMEOUT = 120.0
# Nothing listens here: a validator or cluster that is down.
DEAD_URL = "http://127.0.0.1:9"


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.out, f"no output (exit {self.code}): {self.err}"
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@dataclass
class CliWorld:
    world: SandboxMiner
    rt: Runtime
    env: dict[str, str]
    tmp: Path

    async def run(self, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> CliRun:
        proc = await asyncio.create_subprocess_exec(
            str(GEPETTO),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**self.env, **(env or {})},
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), CLI_TIMEOUT)
        assert proc.returncode is not None
        return CliRun(proc.returncode, out.decode(), err.decode())

    def dead_validator_env(self) -> dict[str, str]:
        validators = {"supported": [{"hotkey": self.world.validator.hotkey, "api": DEAD_URL}]}
        return {"VALIDATORS": json.dumps(validators)}

    def dead_cluster_env(self) -> dict[str, str]:
        path = self.tmp / "dead-kubeconfig"
        path.write_text(json.dumps(kubeconfig_dict(DEAD_URL)))
        return {"KUBECONFIG": str(path)}

    def launchable_chute(self) -> dict[str, Any]:
        """A public HTTP chute (launch-config era) that fits a non-TEE node, with room."""
        fleet_types = {n.gpu_type for n in self.world.fleet if not n.tee}
        for chute in sorted(
            self.world.validator.world.chutes.values(), key=lambda c: c["chute_id"]
        ):
            selector = chute["node_selector"]
            if (
                chute["public"]
                and chute["cords"]
                and not chute.get("tee")
                and is_launch_config_version(chute["chutes_version"])
                and set(selector["supported_gpus"]) & fleet_types
                and selector["gpu_count"] <= 2
            ):
                self.world.validator.set_target(chute["chute_id"], 20)
                return chute
        raise AssertionError("the generated catalog has no such chute")

    def node_for(self, chute: dict[str, Any]) -> str:
        for node in self.world.fleet:
            if not node.tee and node.gpu_type in chute["node_selector"]["supported_gpus"]:
                return node.name
        raise AssertionError("no fleet node fits")

    async def counts(self) -> dict[str, int]:
        """How much state exists: a bad command must leave all of it unchanged."""
        rt = self.rt
        return {
            "deployments": len(await rt.inventory.list_deployments()),
            "claimed_gpus": sum(1 for g in await rt.inventory.list_gpus() if g.deployment_id),
            "locked": sum(1 for s in await rt.inventory.list_servers() if s.locked),
            "jobs": len(self.world.cluster.objects("jobs", "chutes")),
            "audit": len(await rt.state.list_audit(limit=1000)),
        }


@pytest.fixture(scope="module")
async def cli(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CliWorld]:
    name = f"gepetto_cli_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = f"{pg_server.rpartition('/')[0]}/{name}"
    tmp = tmp_path_factory.mktemp("cli")
    kubeconfig = tmp / "kubeconfig"
    world = await start_sandbox_miner(
        MINER, seed=23, nodes=4, chutes=60, timings=FAST, kubeconfig=kubeconfig
    )
    env_settings = {
        "MINER_SS58": MINER,
        "MINER_SEED": SEED,
        "VALIDATORS": json.dumps(
            {"supported": [{"hotkey": world.validator.hotkey, "api": world.validator.base_url}]}
        ),
        "POSTGRESQL": dsn,
        "KUBECONFIG": str(kubeconfig),
        "GEPETTO_EVENT_SOURCE": "none",
        "CHUTE_SHUTDOWN_TIME_SECONDS": "1",
    }
    rt = await build_runtime(load_settings(env_settings))
    await register_fleet(world, rt.inventory)
    bridge = PodBridge(world)
    bridge.start()
    report = await rt.reconciler.run_once()  # chutes into the database, as at start-up
    assert report.plan.complete, report.plan.problems
    # The child sees only what a deployment would set: no stray GEPETTO_* from this shell.
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GEPETTO_") and k not in ("KUBECONFIG", "REDIS_URL")
    }
    try:
        yield CliWorld(world, rt, {**base, **env_settings}, tmp)
    finally:
        await bridge.stop()
        await rt.close()
        await world.stop()
        admin = await asyncpg.connect(pg_server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
