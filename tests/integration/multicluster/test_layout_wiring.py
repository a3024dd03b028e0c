"""The runtime against a multi-cluster sandbox: with GEPETTO_CLUSTER_LAYOUT=auto it detects the
layout from the control plane and serves the fleet of server clusters (each reached through
its row's kubeconfig), while the leader Lease stays in the control plane's cluster."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from bittensor_wallet import Keypair

from gepetto_core.adapters.kube_layout import LayoutCluster
from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.config import load_settings
from gepetto_core.errors import ClusterUnavailableError
from gepetto_core.models.inventory import Server
from gepetto_core.wiring import build_runtime, runtime
from gepetto_sandbox.cluster import FleetNode
from gepetto_sandbox.miner import server_row
from gepetto_sandbox.multicluster import MultiClusterSandbox

from .conftest import eventually


async def register(
    pool: asyncpg.Pool, clusters: MultiClusterSandbox, fleet: list[FleetNode]
) -> None:
    inventory = PgInventory(pool)
    for node in fleet:
        base = Server(
            server_id=node.uid, validator=node.validator, name=node.name,
            ip_address=node.external_ip, gpu_count=node.gpu_count, hourly_cost=2.0,
            is_tee=node.tee,
        )  # fmt: skip
        await inventory.upsert_server(server_row(base, clusters))


async def test_auto_detects_multi_and_reads_every_server_cluster(
    clusters: MultiClusterSandbox,
    fleet: list[FleetNode],
    pool: asyncpg.Pool,
    fresh_db: str,
    tmp_path: Path,
) -> None:
    await register(pool, clusters, fleet)
    kubeconfig = clusters.write_kubeconfig(tmp_path / "kubeconfig")  # current: control plane
    env = {
        "KUBECONFIG": str(kubeconfig),
        "POSTGRESQL": fresh_db,
        "GEPETTO_CLUSTER_SOURCE": "direct",
    }
    async with runtime(load_settings(env)) as rt:
        assert isinstance(rt.cluster, LayoutCluster)
        nodes = await rt.cluster.list_nodes(None)
        assert rt.cluster.layout == "multi"
        # every server's own node, none of the control plane's
        assert sorted(n.name for n in nodes) == sorted(clusters.names)
        health = {h.name: h.state for h in rt.cluster.cluster_health()}
        assert health == {name: "reachable" for name in clusters.names}


async def test_the_leader_lease_stays_in_the_control_plane(
    clusters: MultiClusterSandbox, fresh_db: str, tmp_path: Path
) -> None:
    kubeconfig = clusters.write_kubeconfig(tmp_path / "kubeconfig")
    env = {
        "KUBECONFIG": str(kubeconfig),
        "POSTGRESQL": fresh_db,
        "GEPETTO_CLUSTER_LAYOUT": "multi",
        "GEPETTO_CLUSTER_SOURCE": "direct",
        "GEPETTO_LEADER_ELECTION": "true",
        "GEPETTO_LEASE_IDENTITY": "replica-1",
    }
    leading, stop = asyncio.Event(), asyncio.Event()

    async def lead() -> None:
        leading.set()
        await stop.wait()

    async with runtime(load_settings(env)) as rt:
        elector = rt.elector(lead)
        assert elector is not None
        task = asyncio.create_task(elector.run(stop))
        await asyncio.wait_for(leading.wait(), 30)  # a hang detector

        async def lease_in_control_plane() -> bool:
            leases = clusters.control_plane.objects("leases", "chutes")
            return [o["metadata"]["name"] for o in leases] == ["gepetto-leader"]

        await eventually(lease_in_control_plane)
        for name in clusters.names:
            assert clusters.cluster(name).objects("leases", "chutes") == []
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_the_long_running_process_stops_at_start_when_it_cannot_tell_the_layout(
    clusters: MultiClusterSandbox, fresh_db: str, tmp_path: Path
) -> None:
    """`gepetto serve` builds its runtime with build_runtime: auto detection happens there, so
    an unreadable control plane stops the process at once, naming the setting to set."""
    seed = "0x" + "5e" * 32
    kubeconfig = clusters.write_kubeconfig(tmp_path / "kubeconfig")
    validators = {"supported": [{"hotkey": "5Validator", "api": "http://127.0.0.1:9"}]}
    env = {
        "MINER_SS58": Keypair.create_from_seed(seed).ss58_address,
        "MINER_SEED": seed,
        "VALIDATORS": json.dumps(validators),
        "POSTGRESQL": fresh_db,
        "KUBECONFIG": str(kubeconfig),
        "GEPETTO_EVENT_SOURCE": "none",
        "GEPETTO_CLUSTER_SOURCE": "direct",
    }
    await clusters.control_plane.stop_api()
    with pytest.raises(ClusterUnavailableError, match="set GEPETTO_CLUSTER_LAYOUT=single or"):
        await build_runtime(load_settings(env))
    await clusters.control_plane.start_api()
    rt = await build_runtime(load_settings(env))  # readable again: detected at start
    try:
        assert isinstance(rt.cluster, LayoutCluster) and rt.cluster.layout == "multi"
    finally:
        await rt.close()
