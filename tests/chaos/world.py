"""A whole sandbox miner for the chaos suite: real PostgreSQL, the validator and cluster
sandboxes over real HTTP, the pod bridge playing the chute processes, and an injected clock.

In the single layout one sandbox cluster holds every GPU node. In the multi-cluster layout
(`multi-direct`, `multi-monitor`; tests/support/fleet_layouts.py) every GPU server is its own
sandbox cluster, its kubeconfig in `servers.kubeconfig`, and gepetto reads their state from
each API or from the chutes-monitor cache (agents and a monitor on a private Redis); the
leaks and faults below then cover every member cluster."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bittensor_wallet import Keypair

from gepetto_core.adapters.kube_fleet import FleetCluster
from gepetto_core.config import Settings, load_settings
from gepetto_core.models.validator import is_launch_config_version
from gepetto_core.services.deployer import DeployRequest
from gepetto_core.wiring import Runtime, build_runtime
from gepetto_sandbox.clock import ShiftedClock
from gepetto_sandbox.cluster import PodTimings
from gepetto_sandbox.miner import (
    PodBridge,
    SandboxMiner,
    _pod_ready,
    register_fleet,
    start_sandbox_miner,
)
from gepetto_sandbox.multicluster import PrivateRedis
from gepetto_sandbox.validator import Fault
from gepetto_sandbox.validator.faults import ROUTES
from gepetto_sandbox.validator.world import Rejected
from tests.support.fleet_layouts import (
    FleetClusters,
    Layout,
    MemberClusters,
    MultiClusterWorld,
    start_multicluster_miner,
)

T = TypeVar("T")
SEED = "0x" + "c4" * 32
MINER = Keypair.create_from_seed(SEED).ss58_address
FAST = PodTimings(start_seconds=0.05, ready_seconds=0.05, termination_seconds=0.05)


Clock = ShiftedClock


def validators_json(sandbox: SandboxMiner) -> str:
    v = sandbox.validator
    return json.dumps(
        {"supported": [{"hotkey": v.hotkey, "api": v.base_url, "socket": v.base_url}]}
    )


def layout_env(
    layout: Layout, monitor_redis_url: str | None = None, cluster_timeout: float = 30.0
) -> dict[str, str]:
    """The settings that pick the layout (none for the single one). The per-cluster timeout is
    generous: these worlds test crashes, not slow clusters (tests/integration/e2e/
    test_multicluster_faults.py does), and on a starved CPU a short one turns a healthy sandbox
    cluster into an unknown one, whose leftovers then wait."""
    if layout == "single":
        return {}
    env = {
        "GEPETTO_CLUSTER_LAYOUT": "multi",
        "GEPETTO_CLUSTER_SOURCE": layout.removeprefix("multi-"),
        "GEPETTO_CLUSTER_TIMEOUT_SECONDS": str(cluster_timeout),
    }
    if monitor_redis_url is not None:
        env["GEPETTO_MONITOR_REDIS_URL"] = monitor_redis_url
    return env


def miner_env(sandbox: SandboxMiner, dsn: str, **extra: str) -> dict[str, str]:
    env = {
        "MINER_SS58": MINER,
        "MINER_SEED": SEED,
        "VALIDATORS": validators_json(sandbox),
        "POSTGRESQL": dsn,
        "KUBECONFIG": str(sandbox.kubeconfig),
        "GEPETTO_EVENT_SOURCE": "none",
        "CHUTE_SHUTDOWN_TIME_SECONDS": "1",
    }
    env.update(extra)
    return env


class RestartingPodBridge(PodBridge):
    """The chute processes, restarted by their Job when the validator refuses them (a GPU still
    assigned to an instance a crash left behind, until the reconciler purges it): a refused
    pod tries again on the next step instead of giving up for good."""

    def step(self) -> None:
        world = self._world
        pods = [
            pod
            for cluster in world.gpu_clusters  # the one cluster, or every server's own
            for pod in cluster.objects("pods", "chutes", "chutes/config-id")
        ]
        for pod in pods:
            config_id = pod["metadata"]["labels"]["chutes/config-id"]
            if config_id in self._done or not _pod_ready(pod):
                continue
            container = pod["spec"]["containers"][0]
            env = {e["name"]: str(e.get("value", "")) for e in container.get("env", [])}
            devices = [d for d in env.get("NVIDIA_VISIBLE_DEVICES", "").split(",") if d]
            try:
                world.validator.bring_up(
                    config_id,
                    devices,
                    env.get("CHUTES_EXTERNAL_HOST", ""),
                    int(env.get("CHUTES_PORT_PRIMARY", "0") or 0),
                )
            except (Rejected, KeyError):
                continue  # restarted by its Job; tries again
            self._done.add(config_id)


@dataclass
class ChaosWorld:
    sandbox: SandboxMiner  # in the multi layout its `cluster` is the control plane's
    settings: Settings
    clock: Clock
    bridge: PodBridge
    dsn: str
    layout: Layout = "single"
    multi: MultiClusterWorld | None = None
    # the settings that pick the layout (for `gepetto serve` subprocesses)
    layout_env: dict[str, str] = field(default_factory=dict)

    @property
    def clusters(self) -> FleetClusters:
        """Where the chutes run: the one cluster, or every server's own cluster."""
        if self.multi is None:
            return self.sandbox.cluster
        return MemberClusters(self.multi.clusters)

    def launchable(self) -> list[dict[str, Any]]:
        """Public, launch-config chutes that fit some non-TEE node (targets raised so the
        validator hands out launch configs)."""
        types = {n.gpu_type: n.gpu_count for n in self.sandbox.fleet if not n.tee}
        out = []
        for chute in sorted(
            self.sandbox.validator.world.chutes.values(), key=lambda c: c["chute_id"]
        ):
            sel = chute["node_selector"]
            if (
                chute["public"]
                and chute["cords"]
                and not chute.get("tee")
                and is_launch_config_version(chute["chutes_version"])
                and any(
                    t in sel["supported_gpus"] and n >= sel["gpu_count"] for t, n in types.items()
                )
            ):
                out.append(chute)
        return out

    def open_targets(self, chutes: list[dict[str, Any]], target: int = 50) -> None:
        for chute in chutes:
            self.sandbox.validator.set_target(chute["chute_id"], target)

    def sever(self) -> None:
        """The clusters and the validator stop answering a process (it is dying). In the
        multi layout the agents get the same errors (their open watches go on), and resync
        once healed."""
        self.sandbox.cluster.inject_api_error("/", status=500, times=None)
        if self.multi is not None:
            self.clusters.inject_api_error("/", status=500, times=None)
        for route in ROUTES - {"socket"}:
            self.sandbox.validator.inject_fault(route, Fault(status=503))

    def heal(self) -> None:
        self.sandbox.cluster.clear_faults()
        self.clusters.clear_faults()
        self.sandbox.validator.clear_faults()

    def untracked_objects(self, rows: set[str]) -> list[str]:
        return [
            f"{kind}/{obj['metadata']['name']}"
            for kind in ("jobs", "services")
            for obj in self.clusters.objects(kind, "chutes", "chutes/deployment-id")
            if obj["metadata"]["labels"]["chutes/deployment-id"] not in rows
        ]

    def job_ids(self) -> set[str]:
        return {
            j["metadata"]["labels"]["chutes/deployment-id"]
            for j in self.clusters.objects("jobs", "chutes", "chutes/deployment-id")
            if not j["metadata"].get("deletionTimestamp")
        }

    def our_instances(self) -> list[dict[str, Any]]:
        return [
            i for i in self.sandbox.validator.world.instances.values() if i["miner_hotkey"] == MINER
        ]


@contextlib.asynccontextmanager
async def chaos_world(
    dsn: str,
    tmp_path: Path,
    *,
    seed: int = 11,
    nodes: int = 4,
    chutes: int = 60,
    layout: Layout = "single",
    monitor_redis: PrivateRedis | None = None,
    **env: str,
) -> AsyncIterator[ChaosWorld]:
    """`monitor_redis`: the monitor's Redis (required by `multi-monitor`; emptied first)."""
    kubeconfig = tmp_path / f"kubeconfig-{seed}"
    multi: MultiClusterWorld | None = None
    redis_url: str | None = None
    if layout == "single":
        sandbox = await start_sandbox_miner(
            MINER, seed=seed, nodes=nodes, chutes=chutes, timings=FAST, kubeconfig=kubeconfig
        )
    else:
        if layout == "multi-monitor":
            assert monitor_redis is not None, "multi-monitor needs the monitor's Redis"
            redis_url = monitor_redis.fresh_url()
        multi = await start_multicluster_miner(
            MINER, kubeconfig=kubeconfig, seed=seed, nodes=nodes, chutes=chutes, timings=FAST,
            monitor_redis_url=redis_url,
        )  # fmt: skip
        sandbox = multi.miner
    chosen = layout_env(layout, redis_url)
    settings = load_settings(miner_env(sandbox, dsn, **chosen, **env))
    clock = Clock()
    bridge = RestartingPodBridge(sandbox)
    try:
        rt = await build_runtime(settings, clock=clock)
        try:
            # the layout runs for real: one client per server cluster, not the control plane's
            assert multi is None or isinstance(rt.cluster, FleetCluster), type(rt.cluster)
            await register_fleet(
                sandbox, rt.inventory, clusters=multi.clusters if multi is not None else None
            )
            report = await rt.reconciler.run_once()  # chutes into the database
            assert report.plan.complete, report.plan.problems
        finally:
            await rt.close()
        bridge.start()
        yield ChaosWorld(sandbox, settings, clock, bridge, dsn, layout, multi, chosen)
    finally:
        await bridge.stop()
        if multi is not None:
            await multi.stop()
        else:
            await sandbox.stop()


@contextlib.asynccontextmanager
async def runtime_of(world: ChaosWorld) -> AsyncIterator[Runtime]:
    rt = await build_runtime(world.settings, clock=world.clock)
    try:
        yield rt
    finally:
        await rt.close()


# A hang detector, not a budget: far above what any wait here needs on a loaded machine (the
# suite must pass with a second copy of itself running beside it on two cores).
SAFETY_NET_SECONDS = 60.0


async def eventually(
    check: Callable[[], Awaitable[T]], seconds: float = SAFETY_NET_SECONDS, *, poll: float = 0.05
) -> T:
    """Poll until `check` returns something truthy; fail (not time) after `seconds`. (What is
    polled lives in other processes or sandboxes: there is no event to await.)"""
    async with asyncio.timeout(seconds):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(poll)


async def free_pair(
    rt: Runtime, rng: random.Random | None = None, *, world: ChaosWorld | None = None
) -> DeployRequest | None:
    """A chute and a server the deploy guard accepts right now (None: the fleet is full); with
    `world`, only chutes the validator will hand launch configs for (public, room to grow)."""
    from gepetto_core.services.deployer import placement_problem

    chutes = await rt.inventory.list_chutes()
    if world is not None:
        wanted = {c["chute_id"] for c in world.launchable()}
        chutes = [c for c in chutes if c.chute_id in wanted]
    servers = await rt.inventory.list_servers()
    if rng is not None:
        rng.shuffle(chutes)
    for chute in chutes:
        for server in servers:
            gpus = await rt.inventory.list_gpus(server.server_id)
            if placement_problem(chute, server, gpus) is None:
                return DeployRequest(chute.chute_id, server.server_id, requested_by="U-op")
    return None


async def settle(rt: Runtime, seconds: float = SAFETY_NET_SECONDS) -> None:
    """Reconcile until every deployment is verified and active (or `seconds` pass: callers
    check the state they need, so a slow machine only makes this take longer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        await rt.reconciler.run_once()
        rows = await rt.inventory.list_deployments()
        if all(d.verified_at and d.active for d in rows):
            return
        await asyncio.sleep(0.1)


async def reconcile_until_quiet(
    world: ChaosWorld, rt: Runtime, seconds: float = SAFETY_NET_SECONDS
) -> None:
    """Reconcile passes until one finds nothing to do and the cluster holds nothing untracked
    (a Service whose Job was mid-deletion is only removed by the pass after the Job is gone,
    as the loop's next turn would). Usually one or two passes; how many depends on how fast
    the sandbox finishes deletions, so the bound is not a pass count. Past it, the caller's
    invariant checks say what is still wrong."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                report = await rt.reconciler.run_once()
                rows = {d.deployment_id for d in await rt.inventory.list_deployments()}
                quiet = report.plan.complete and not report.plan.actions
                if quiet and not world.untracked_objects(rows):
                    return
                await asyncio.sleep(0.2)


async def healthy_fleet(rt: Runtime, n: int, world: ChaosWorld) -> list[str]:
    """Deploy `n` chutes and wait until each is verified and active."""
    ids = []
    for _ in range(n):
        request = await free_pair(rt, world=world)
        assert request is not None, "the fleet has no room"
        ids.append((await rt.deployer.deploy(request)).deployment.deployment_id)
    await settle(rt)
    rows = {d.deployment_id: d for d in await rt.inventory.list_deployments()}
    assert all(rows[i].verified_at and rows[i].active for i in ids), "fleet did not come up"
    return ids
