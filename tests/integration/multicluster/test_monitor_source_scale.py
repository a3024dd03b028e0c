"""MonitorSource over 100 clusters × 8 GPUs: every cluster read in one round trip, with
realistic objects (gepetto's own chute Jobs and Services, run by a sandbox cluster, as its
agent and the monitor cached them), written for 100 clusters through the monitor's register
path. The time of one read is printed (`-s`), never asserted."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from kubernetes_asyncio import client
from pydantic import SecretStr
from redis.asyncio import Redis

from gepetto_core import kube_objects as ko
from gepetto_core import kube_service
from gepetto_core.adapters.cluster_source import ClusterSnapshot
from gepetto_core.adapters.kube_views import pod_view
from gepetto_core.adapters.monitor_source import MonitorSource
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_sandbox.cluster import FleetNode

from .conftest import World, eventually

CLUSTERS = 100
SETTINGS = ko.JobSettings(miner_ss58="5MinerHotkeyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
LAUNCH = ko.LaunchParams(launch_token=SecretStr("jwt"))


def rows(node: FleetNode, index: int) -> tuple[Chute, Deployment, Server, list[Gpu]]:
    server = Server(
        server_id=node.uid,
        validator=node.validator,
        name=node.name,
        ip_address=node.external_ip,
        gpu_count=node.gpu_count,
        cpu_per_gpu=4,
        memory_per_gpu=60,
        hourly_cost=1.5,
    )
    chute = Chute(
        chute_id=f"chute-{index}",
        validator=node.validator,
        image="alice/llama:0.1-2",
        code="print('hi')",
        filename="chute_file.py",
        ref_str="chute_file:chute",
        version=f"v-hash-{index}",
        gpu_count=1,
        chutes_version="0.3.1",
    )
    deployment = Deployment(
        deployment_id=f"dep-{index}",
        validator=node.validator,
        chute_id=chute.chute_id,
        server_id=node.uid,
        version=chute.version,
    )
    gpus = [Gpu(gpu_id=node.gpu_ids[index], server_id=node.uid, model_short_ref=node.gpu_type)]
    return chute, deployment, server, gpus


async def fill_one_cluster(api: client.ApiClient, node: FleetNode) -> None:
    """One chute per GPU, each a Service and a Job built as gepetto builds them."""
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    for index in range(node.gpu_count):
        chute, deployment, server, gpus = rows(node, index)
        service = kube_service.build_chute_service(chute, deployment, SETTINGS, LAUNCH)
        created = api.sanitize_for_serialization(
            await core.create_namespaced_service("chutes", service)
        )
        ports = {(p["protocol"], p["port"]): p["nodePort"] for p in created["spec"]["ports"]}
        job = ko.build_chute_job(chute, server, gpus, deployment, SETTINGS, LAUNCH, ports)
        await batch.create_namespaced_job("chutes", job)


async def cached_resources(world: World, name: str) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for resource_type in ("deployment", "service", "pod", "node", "job"):
        values = await world.redis.hgetall(f"clusters:{name}:resources:{resource_type}")
        found[f"{resource_type}s"] = [json.loads(v) for v in values.values()]
    return found


def renamed(resources: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """The same objects on another server: node name, pod placement and deployment ids."""
    text = json.dumps(resources).replace(old, new).replace('"dep-', f'"{new}-dep-')
    copied: dict[str, Any] = json.loads(text)
    return copied


async def test_one_read_of_100_clusters_of_8_gpus(
    world: World, miner_api: dict[str, client.ApiClient]
) -> None:
    node = next(n for n in world.fleet if n.gpu_count == 8)
    await fill_one_cluster(miner_api[node.name], node)

    async def all_ready() -> dict[str, list[dict[str, Any]]] | None:
        found = await cached_resources(world, node.name)
        ready = [pod_view(p).ready for p in found["pods"]]
        return found if ready == [True] * node.gpu_count else None

    template = await eventually(all_ready, 30.0)
    assert len(template["jobs"]) == len(template["services"]) == node.gpu_count
    await world.redis.flushall()  # only the 100 clusters below
    monitor = world.monitored.monitor
    names = [f"gpu-{i:03d}" for i in range(CLUSTERS)]
    beat = {"state": "active", "timestamp": world.agent_clock().isoformat()}
    for name in names:
        assert await monitor.register(name, renamed(template, node.name, name)) == 200
        assert await monitor.heartbeat(name, beat) == 200

    redis = Redis.from_url(world.server.url())
    source = MonitorSource(redis, namespace="chutes", timeout=10.0, clock=world.agent_clock)
    try:
        seconds = []
        for _ in range(5):
            started = time.perf_counter()
            reads = await source.read(names)
            seconds.append(time.perf_counter() - started)
    finally:
        await source.close()
        await redis.aclose()

    snapshots = [r for r in reads.values() if isinstance(r, ClusterSnapshot)]
    assert len(snapshots) == CLUSTERS
    jobs = [j for s in snapshots for j in s.jobs]
    assert len(jobs) == CLUSTERS * 8 and all(len(j.pods) == 1 and j.ready for j in jobs)
    assert len({j.deployment_id for j in jobs}) == CLUSTERS * 8
    assert sum(n.gpu_count for s in snapshots for n in s.nodes) == CLUSTERS * 8
    assert sum(len(s.services) for s in snapshots) == CLUSTERS * 8
    assert all(s.jobs[0].node_name == s.name for s in snapshots)
    size = sum(len(json.dumps(v)) for v in template.values()) * CLUSTERS
    print(
        f"\nMonitorSource.read of {CLUSTERS} clusters × 8 GPUs ({size / 1e6:.1f} MB of JSON): "
        f"median {statistics.median(seconds) * 1000:.0f} ms, min {min(seconds) * 1000:.0f} ms"
    )
