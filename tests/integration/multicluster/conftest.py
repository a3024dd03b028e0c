"""Three sandbox GPU-server clusters, their agents and a chutes-monitor simulator writing to a
private redis-server (restartable, and nobody else's keys)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from kubernetes_asyncio import client
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from gepetto_core.adapters.kube_connect import connect_api
from gepetto_sandbox.cluster import FleetNode, PodTimings, build_fleet
from gepetto_sandbox.multicluster import (
    MonitoredClusters,
    MultiClusterSandbox,
    PrivateRedis,
)
from tests.support.fleet_layouts import AGENT_TIMINGS

T = TypeVar("T")
FAST = PodTimings(start_seconds=0.02, ready_seconds=0.02, termination_seconds=0.05)
# The shared test agents, with the official 30 s heartbeat (these tests step it by hand).
TIMINGS = replace(AGENT_TIMINGS, heartbeat_interval=30.0)
# Microseconds on purpose: isoformat() drops them when they are 0.
T0 = datetime(2026, 12, 5, 8, 0, 0, 123456, tzinfo=UTC)


@dataclass
class SteppedClock:
    """A clock that moves only when the test moves it."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    clusters: MultiClusterSandbox
    monitored: MonitoredClusters
    redis: Redis
    server: PrivateRedis
    monitor_clock: SteppedClock
    agent_clock: SteppedClock
    fleet: list[FleetNode] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return self.clusters.names


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fleet() -> list[FleetNode]:
    return build_fleet(seed=11, count=3, gpu_types=("h100", "a6000", "h200"), tee_every=3)


@pytest_asyncio.fixture
async def redis(private_redis: PrivateRedis) -> AsyncIterator[Redis]:
    if not private_redis.running:
        private_redis.start()
    connection = Redis.from_url(private_redis.url(), decode_responses=True)
    await connection.flushall()
    yield connection
    await connection.aclose()


@pytest_asyncio.fixture
async def clusters(fleet: list[FleetNode]) -> AsyncIterator[MultiClusterSandbox]:
    sandbox = MultiClusterSandbox(fleet, seed=11, timings=FAST)
    await sandbox.start()
    yield sandbox
    await sandbox.stop()


@pytest_asyncio.fixture
async def world(
    clusters: MultiClusterSandbox,
    redis: Redis,
    private_redis: PrivateRedis,
    fleet: list[FleetNode],
) -> AsyncIterator[World]:
    monitor_clock, agent_clock = SteppedClock(), SteppedClock(T0 + timedelta(seconds=1))
    monitored = MonitoredClusters(
        clusters,
        private_redis.url(),
        timings=TIMINGS,
        clock=monitor_clock,
        agent_clock=agent_clock,
        loops=False,
    )
    await monitored.start()
    yield World(clusters, monitored, redis, private_redis, monitor_clock, agent_clock, fleet)
    await monitored.stop()


@pytest_asyncio.fixture
async def miner_api(clusters: MultiClusterSandbox) -> AsyncIterator[dict[str, client.ApiClient]]:
    """A client per server, built from its stored kubeconfig as the miner builds them."""
    made = {}
    for name in clusters.names:
        made[name] = await connect_api(json.loads(clusters.kubeconfig_text(name)), context=name)
    yield made
    for api in made.values():
        await api.close()


async def eventually(check: Callable[[], Awaitable[T | None]], seconds: float = 15.0) -> T:
    """Poll until `check` returns something truthy; fail (not time) after `seconds`."""
    async with asyncio.timeout(seconds):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.02)


class Channels:
    """Raw pub/sub messages received on some channels, in order."""

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub
        self.received: list[tuple[str, str]] = []

    async def drain(self) -> list[tuple[str, str]]:
        while True:
            message = await self.pubsub.get_message(timeout=0.05)
            if message is None:
                return self.received
            if message["type"] in ("message", "pmessage"):
                self.received.append((message["channel"], message["data"]))

    async def wait_for(
        self, predicate: Callable[[list[tuple[str, str]]], bool], seconds: float = 15.0
    ) -> list[tuple[str, str]]:
        async def check() -> list[tuple[str, str]] | None:
            await self.drain()
            return self.received if predicate(self.received) else None

        return await eventually(check, seconds)

    def on(self, channel: str) -> list[dict[str, Any]]:
        return [json.loads(data) for ch, data in self.received if ch == channel]


@pytest_asyncio.fixture
async def listen(redis: Redis) -> AsyncIterator[Callable[..., Awaitable[Channels]]]:
    opened: list[PubSub] = []

    async def subscribe(*channels: str, patterns: tuple[str, ...] = ()) -> Channels:
        pubsub = redis.pubsub()
        if channels:
            await pubsub.subscribe(*channels)
        if patterns:
            await pubsub.psubscribe(*patterns)
        opened.append(pubsub)
        return Channels(pubsub)

    yield subscribe
    for pubsub in opened:
        await pubsub.aclose()


def job_body(name: str, node: str, deployment_id: str = "d-1") -> dict[str, Any]:
    """A minimal chute-like Job pinned to `node`, as the miner creates them."""
    labels = {"chutes/deployment-id": deployment_id, "chutes/chute": "true"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "chutes", "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeName": node,
                    "restartPolicy": "Never",
                    "containers": [{"name": "chute", "image": "alice/model:1.0"}],
                },
            },
        },
    }


def service_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "chutes"},
        "spec": {"type": "NodePort", "ports": [{"port": 8000, "targetPort": 8000}]},
    }
