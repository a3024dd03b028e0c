"""A sandbox miner in either cluster layout, for tests that must hold in both.

`single`: today's world (gepetto_sandbox/miner.py): one cluster holds every GPU node.
`multi-direct` / `multi-monitor`: the official multi-cluster layout (docs/multi-cluster.md):
every GPU server is its own cluster (`MultiClusterSandbox`), its kubeconfig stored in
`servers.kubeconfig`; gepetto reads state from each cluster's API (`direct`) or from the
chutes-monitor cache that agents and a monitor fill in a private Redis (`monitor`).

`FleetClusters` lets a test inspect and fault "the cluster" without caring which layout runs:
a single `SandboxCluster` already is one; `MemberClusters` spreads the same calls over every
member cluster."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import pytest

from gepetto_core.config import Settings, load_settings
from gepetto_sandbox.cluster import ApiFault, PodFault, PodTimings
from gepetto_sandbox.miner import SandboxMiner, start_sandbox_miner
from gepetto_sandbox.multicluster import AgentTimings, MonitoredClusters, MultiClusterSandbox

Layout = Literal["single", "multi-direct", "multi-monitor"]
LAYOUTS: tuple[Layout, ...] = ("single", "multi-direct", "multi-monitor")
MULTI_LAYOUTS: tuple[Layout, ...] = ("multi-direct", "multi-monitor")

# Agents that notice a lost API quickly and retry often; the heartbeat keeps every healthy
# cluster `active` in the monitor (its health checker calls a cluster unhealthy only after
# 2 x heartbeat_interval without one).
AGENT_TIMINGS = AgentTimings(
    heartbeat_interval=5.0,
    list_attempts=3,
    retry_delay=0.05,
    restart_attempts=200,
    backoff_base=0.05,
    backoff_cap=0.2,
    deletion_poll=0.05,
    request_timeout=5.0,
)


class FleetClusters(Protocol):
    """What a test reads from and injects into the sandbox cluster(s) of the fleet."""

    def objects(
        self, resource: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    def inject_api_error(
        self,
        path_pattern: str,
        *,
        method: str | None = None,
        status: int | None = 500,
        times: int | None = 1,
        delay: float = 0.0,
        reason: str | None = None,
    ) -> object: ...

    def script_fault(self, key: str, fault: PodFault) -> None: ...

    def clear_faults(self) -> None: ...


class MemberClusters:
    """Every member cluster of a `MultiClusterSandbox` seen as one: objects are the union,
    a fault goes to each member (`times` counts per member)."""

    def __init__(self, clusters: MultiClusterSandbox) -> None:
        self.clusters = clusters

    def objects(
        self, resource: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            obj
            for name in self.clusters.names
            for obj in self.clusters.cluster(name).objects(resource, namespace, label_selector)
        ]

    def inject_api_error(
        self,
        path_pattern: str,
        *,
        method: str | None = None,
        status: int | None = 500,
        times: int | None = 1,
        delay: float = 0.0,
        reason: str | None = None,
    ) -> list[ApiFault]:
        return [
            self.clusters.cluster(name).inject_api_error(
                path_pattern, method=method, status=status, times=times, delay=delay, reason=reason
            )
            for name in self.clusters.names
        ]

    def script_fault(self, key: str, fault: PodFault) -> None:
        for name in self.clusters.names:
            self.clusters.cluster(name).script_fault(key, fault)

    def clear_faults(self) -> None:
        for name in self.clusters.names:
            self.clusters.cluster(name).clear_faults()


@dataclass
class MultiClusterWorld:
    """The multi-cluster sandbox miner (a validator, a control-plane cluster running no chutes,
    one cluster per GPU server) and, for the monitor source, the agents and monitor filling
    its cache."""

    miner: SandboxMiner
    clusters: MultiClusterSandbox
    monitored: MonitoredClusters | None

    async def stop(self) -> None:
        if self.monitored is not None:
            await self.monitored.stop()
        await self.miner.stop()


async def start_multicluster_miner(
    miner_hotkey: str,
    *,
    kubeconfig: Path,
    seed: int = 0,
    nodes: int = 4,
    chutes: int = 30,
    timings: PodTimings | None = None,
    monitor_redis_url: str | None = None,
    agent_timings: AgentTimings = AGENT_TIMINGS,
) -> MultiClusterWorld:
    """`start_sandbox_miner` in the multi-cluster layout (same seed: same catalog and fleet).
    `kubeconfig` gets the control plane and every server (current context: the control plane),
    as an operator's merged kubeconfig has them. With `monitor_redis_url`, every cluster's
    agent registers with a monitor writing that Redis, and their loops run."""
    world = await start_sandbox_miner(
        miner_hotkey,
        seed=seed,
        nodes=nodes,
        chutes=chutes,
        timings=timings,
        kubeconfig=kubeconfig,
        layout="multi",
    )
    clusters = world.clusters
    assert clusters is not None
    monitored = None
    if monitor_redis_url is not None:
        monitored = MonitoredClusters(clusters, monitor_redis_url, timings=agent_timings)
        try:
            await monitored.start()
            # Registered clusters are `starting` (a snapshot that may still be filling) until
            # their agent's first heartbeat makes them `active`: no waiting for the loop's.
            beats = await monitored.heartbeat_all()
            assert set(beats.values()) == {200}, beats
        except BaseException:
            await world.stop()
            raise
    return MultiClusterWorld(world, clusters, monitored)


def layout_settings(
    base: Mapping[str, str],
    layout: Layout,
    *,
    monitor_redis_url: str | None = None,
    cluster_timeout_seconds: float = 5.0,
) -> Settings:
    """`base` (identity, validators, database, KUBECONFIG) plus the layout's own settings.
    Both layouts leave GEPETTO_CLUSTER_LAYOUT to its detection (`auto`)."""
    env = dict(base)
    if layout != "single":
        # `auto`, as `serve` runs by default: the control plane's k3s node says multi
        env["GEPETTO_CLUSTER_LAYOUT"] = "auto"
        env["GEPETTO_CLUSTER_SOURCE"] = layout.removeprefix("multi-")
        env["GEPETTO_CLUSTER_TIMEOUT_SECONDS"] = str(cluster_timeout_seconds)
        if monitor_redis_url is not None:
            env["GEPETTO_MONITOR_REDIS_URL"] = monitor_redis_url
    return load_settings(env)


# The e2e `miner` fixture takes its layout from the `layout` argument: this runs a test in
# every layout (the single one and the multi-cluster one with each state source).
in_every_layout = pytest.mark.parametrize("layout", LAYOUTS)
