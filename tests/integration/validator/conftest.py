"""Fixtures for the validator integration tests: a sandbox validator on a real port, a real
aiohttp session and the real client, signing as a registered miner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gepetto_core.adapters.signing import HotkeySigner
from gepetto_core.adapters.validator import HttpValidatorApi
from gepetto_core.models.events import MinerEvent
from gepetto_core.models.validator import is_launch_config_version
from gepetto_sandbox.validator import SandboxValidator


@pytest.fixture(scope="session")
def miner() -> HotkeySigner:
    return HotkeySigner("//GepettoTestMiner")


@pytest.fixture
async def sandbox(miner: HotkeySigner) -> AsyncIterator[SandboxValidator]:
    sb = SandboxValidator(seed=7, miners=[miner.hotkey])
    sb.load_generated(40, seed=7)
    await sb.start()
    yield sb
    await sb.stop()


@pytest.fixture
def api(
    http: aiohttp.ClientSession, miner: HotkeySigner, sandbox: SandboxValidator
) -> HttpValidatorApi:
    return HttpValidatorApi(
        http,
        miner,
        sandbox.base_url,
        sandbox.hotkey,
        # Far above what a request to the sandbox needs, however loaded the machine: the
        # sandbox answers in this very event loop, so any stall of the test process counts.
        # (Tests of what a timeout does bring their own, with a fault that outlasts it.)
        timeout=10.0,
        read_timeout=5.0,
        backoff_base=0.01,
        backoff_cap=0.02,
    )


def pick_chute(sandbox: SandboxValidator, *, legacy: bool = False) -> dict[str, Any]:
    """A public HTTP chute (launch-config or legacy) that a fresh server can run."""
    for chute in sandbox.world.chutes.values():
        if (
            chute["public"]
            and chute["cords"]
            and is_launch_config_version(chute["chutes_version"]) is not legacy
        ):
            return chute
    raise AssertionError("catalog has no such chute")


def server_for(
    sandbox: SandboxValidator, miner: HotkeySigner, chute: dict[str, Any], host: str = "10.1.0.5"
) -> list[str]:
    """Give the miner a verified server that fits the chute; returns its GPU uuids."""
    server = sandbox.add_server(
        miner.hotkey,
        name=f"node-{len(sandbox.world.servers)}",
        gpu_identifier=chute["node_selector"]["supported_gpus"][0],
        gpu_count=chute["node_selector"]["gpu_count"],
        host=host,
    )
    return [g["uuid"] for g in server["gpus"]]


def make_room(sandbox: SandboxValidator, chute_id: str, free: int = 5) -> None:
    total, _, _ = sandbox.world.counts(chute_id, None)
    sandbox.set_target(chute_id, total + free)


class Recorder:
    """A dispatcher that records events and can be told to fail on some."""

    def __init__(self) -> None:
        self.events: list[MinerEvent] = []
        self.fail_on: set[str] = set()
        self.arrived = asyncio.Condition()

    async def __call__(self, event: MinerEvent) -> None:
        async with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()
        if event.data.get("chute_id") in self.fail_on:
            raise RuntimeError("handler bug")

    async def wait_for(self, count: int) -> list[MinerEvent]:
        async with asyncio.timeout(60), self.arrived:  # a hang detector
            await self.arrived.wait_for(lambda: len(self.events) >= count)
        return self.events
