"""A whole miner for end-to-end tests: real PostgreSQL, the validator and cluster sandboxes over
real HTTP/WebSocket, and gepetto's runtime built from settings exactly as `serve` builds it.

The `miner` runs the single-cluster layout unless a test parametrizes `layout` (tests/support/
fleet_layouts.py): `pytestmark = pytest.mark.parametrize("layout", LAYOUTS)` runs it in the
single layout and in the multi-cluster layout with both state sources. Tests inspect and fault
the chute clusters through `miner.cluster`, which is the one sandbox cluster or every member
cluster, whichever layout runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from bittensor_wallet import Keypair

from gepetto_core.config import Settings
from gepetto_core.models.validator import is_launch_config_version
from gepetto_core.wiring import Runtime, build_runtime
from gepetto_sandbox.clock import ShiftedClock
from gepetto_sandbox.cluster import PodTimings
from gepetto_sandbox.miner import PodBridge, SandboxMiner, register_fleet, start_sandbox_miner
from gepetto_sandbox.multicluster import MonitoredClusters, MultiClusterSandbox, PrivateRedis
from tests.support.fleet_layouts import (
    FleetClusters,
    Layout,
    MemberClusters,
    MultiClusterWorld,
    layout_settings,
    start_multicluster_miner,
)

T = TypeVar("T")
SEED = "0x" + "5e" * 32
MINER = Keypair.create_from_seed(SEED).ss58_address
FAST = PodTimings(start_seconds=0.05, ready_seconds=0.05, termination_seconds=0.05)


Clock = ShiftedClock


@dataclass
class Miner:
    world: SandboxMiner
    settings: Settings
    clock: Clock
    rt: Runtime
    bridge: PodBridge
    layout: Layout = "single"
    # the multi-cluster layout's clusters (None in the single layout)
    multi: MultiClusterWorld | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def cluster(self) -> FleetClusters:
        """Where the chutes run: the one sandbox cluster, or every server's own cluster."""
        return self.world.cluster if self.multi is None else MemberClusters(self.multi.clusters)

    @property
    def clusters(self) -> MultiClusterSandbox:
        """The server clusters (multi-cluster layout only)."""
        assert self.multi is not None, f"the {self.layout} layout has no member clusters"
        return self.multi.clusters

    @property
    def monitored(self) -> MonitoredClusters:
        """The agents and monitor filling the cache (the `multi-monitor` layout only)."""
        assert self.multi is not None and self.multi.monitored is not None, self.layout
        return self.multi.monitored

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.bridge.stop()
        await self.rt.close()

    async def restart(self) -> Runtime:
        """A fresh gepetto process on the same database (the crash-recovery path)."""
        await self.rt.close()
        self.rt = await build_runtime(self.settings, clock=self.clock)
        return self.rt

    def launch_chute(self, *, legacy: bool = False) -> dict[str, Any]:
        """A public HTTP chute that fits a non-TEE fleet node, with room at the validator."""
        for chute in sorted(
            self.world.validator.world.chutes.values(), key=lambda c: c["chute_id"]
        ):
            if (
                chute["public"]
                and chute["cords"]
                and not chute.get("tee")
                and is_launch_config_version(chute["chutes_version"]) is not legacy
                and self._fitting_node(chute) is not None
            ):
                self.world.validator.set_target(chute["chute_id"], 20)
                return chute
        raise AssertionError("the generated catalog has no such chute")

    def _fitting_node(self, chute: dict[str, Any]) -> str | None:
        selector = chute["node_selector"]
        for node in self.world.fleet:
            if (
                not node.tee
                and node.gpu_type in selector["supported_gpus"]
                and node.gpu_count >= 2 * selector["gpu_count"]
            ):
                return node.uid
        return None

    def server_for(self, chute: dict[str, Any]) -> str:
        node = self._fitting_node(chute)
        assert node is not None, "no fleet node fits"
        return node


@pytest.fixture
def layout() -> Layout:
    """The cluster layout the `miner` runs; tests parametrize it to run in several."""
    return "single"


@pytest.fixture
def cluster_timeout() -> float:
    """GEPETTO_CLUSTER_TIMEOUT_SECONDS in the multi layout (fault tests make it small)."""
    return 5.0


@pytest.fixture(scope="session")
def monitor_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """The chutes-monitor cache's Redis: private (nobody else's keys; a test may restart it)."""
    server = PrivateRedis(tmp_path_factory.mktemp("monitor-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def miner(
    fresh_db: str,
    tmp_path: Path,
    layout: Layout,
    cluster_timeout: float,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Miner]:
    kubeconfig = tmp_path / "kubeconfig"
    redis_url = None
    if layout == "multi-monitor":
        redis_url = request.getfixturevalue("monitor_redis").fresh_url()
    async with contextlib.AsyncExitStack() as cleanup:
        multi: MultiClusterWorld | None = None
        if layout == "single":
            world = await start_sandbox_miner(
                MINER, seed=11, nodes=4, chutes=60, timings=FAST, kubeconfig=kubeconfig
            )
            cleanup.push_async_callback(world.stop)
        else:
            multi = await start_multicluster_miner(
                MINER,
                kubeconfig=kubeconfig,
                seed=11,
                nodes=4,
                chutes=60,
                timings=FAST,
                monitor_redis_url=redis_url,
            )
            cleanup.push_async_callback(multi.stop)
            world = multi.miner
        base = {
            "MINER_SS58": MINER,
            "MINER_SEED": SEED,
            "VALIDATORS": json.dumps(
                {
                    "supported": [
                        {
                            "hotkey": world.validator.hotkey,
                            "api": world.validator.base_url,
                            "socket": world.validator.base_url,
                        }
                    ]
                }
            ),
            "POSTGRESQL": fresh_db,
            "KUBECONFIG": str(kubeconfig),
            "GEPETTO_EVENT_SOURCE": "socketio",
            "CHUTE_SHUTDOWN_TIME_SECONDS": "1",
        }
        settings = layout_settings(
            base, layout, monitor_redis_url=redis_url, cluster_timeout_seconds=cluster_timeout
        )
        clock = Clock()
        rt = await build_runtime(settings, clock=clock)
        m = Miner(world, settings, clock, rt, PodBridge(world), layout, multi)
        cleanup.push_async_callback(m.close)
        await register_fleet(world, rt.inventory, clusters=multi.clusters if multi else None)
        m.bridge.start()
        # chutes into the database, as the first reconcile pass after start does
        report = await rt.reconciler.run_once()
        assert report.plan.complete, report.plan.problems
        # the layout detected is the one meant: one health entry per server cluster, read
        # from the chosen source (the single layout reports its one cluster as "*")
        expected = (
            {("*", "single")}
            if multi is None
            else {(name, layout.removeprefix("multi-")) for name in multi.clusters.names}
        )
        assert {(h.name, h.source) for h in report.health} == expected, report.health
        yield m


@pytest.fixture
async def events(miner: Miner) -> AsyncIterator[None]:
    """Run the configured event intake (socket.io to the validator sandbox) until the test ends."""
    stop = asyncio.Event()
    sources = miner.rt.event_sources()
    miner.tasks += [asyncio.create_task(s.run(stop)) for s in sources]
    await eventually(lambda: _ready(sources))
    yield
    stop.set()


async def _ready(sources: list[Any]) -> bool:
    return all(s.ready.is_set() for s in sources)


# A hang detector, not a budget: far above what any wait here needs on a loaded machine (the
# suite must pass with a second copy of itself running beside it on two cores).
SAFETY_NET_SECONDS = 60.0


async def eventually(check: Callable[[], Awaitable[T]], seconds: float = SAFETY_NET_SECONDS) -> T:
    """Poll until `check` returns something truthy; fail (not time) after `seconds`."""
    async with asyncio.timeout(seconds):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.05)
