"""A whole sandbox miner world for tests, the demo and benchmarks: a validator sandbox and a
cluster sandbox that agree on the fleet, the miner's inventory rows as `chutes-miner add-node`
would write them, and a bridge that plays the chute process's part (a ready pod claims its
launch config, proves itself and activates at the validator)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.models.inventory import Gpu, Server
from gepetto_sandbox.cluster import FleetNode, PodFault, PodTimings, SandboxCluster, build_fleet
from gepetto_sandbox.multicluster import MultiClusterSandbox
from gepetto_sandbox.validator import SandboxValidator
from gepetto_sandbox.validator.gpus import GPU_TYPES
from gepetto_sandbox.validator.world import Rejected

log = logging.getLogger(__name__)

# What the miner pays per GPU-hour, as a share of the validator's price for that GPU type.
RENT_SHARE = 0.5


def hourly_cost(gpu_type: str) -> float:
    gpu = GPU_TYPES.get(gpu_type)
    return round(gpu.hourly_rate * RENT_SHARE, 3) if gpu else 1.0


@dataclass
class SandboxMiner:
    """`cluster`: the one cluster of the single layout, or the control-plane cluster of the
    multi-cluster layout, where `clusters` holds one cluster per GPU server."""

    validator: SandboxValidator
    cluster: SandboxCluster
    miner_hotkey: str
    fleet: list[FleetNode]
    kubeconfig: Path | None = None
    clusters: MultiClusterSandbox | None = None

    @property
    def gpu_clusters(self) -> list[SandboxCluster]:
        """Where chute pods run: the one cluster, or every server's own."""
        if self.clusters is None:
            return [self.cluster]
        return [member.sandbox for member in self.clusters.members.values()]

    def script_fault(self, key: str, fault: PodFault) -> None:
        """Pods of that chute, deployment or job fail this way, on whichever cluster."""
        for cluster in self.gpu_clusters:
            cluster.script_fault(key, fault)

    async def stop(self) -> None:
        if self.clusters is not None:
            await self.clusters.stop()  # the control plane with them
        else:
            await self.cluster.stop()
        await self.validator.stop()


async def start_sandbox_miner(
    miner_hotkey: str,
    *,
    seed: int = 0,
    nodes: int = 4,
    chutes: int = 30,
    gpu_types: tuple[str, ...] = ("h100", "a6000", "l40s", "h200"),
    timings: PodTimings | None = None,
    kubeconfig: Path | None = None,
    layout: Literal["single", "multi"] = "single",
) -> SandboxMiner:
    """`layout="multi"`: one cluster per server plus a control-plane cluster, and `kubeconfig`
    the merged file (the control plane's context current, every server's by its name)."""
    validator = SandboxValidator(seed=seed, miners=[miner_hotkey])
    validator.load_generated(chutes, seed=seed)
    fleet = build_fleet(seed=seed, count=nodes, gpu_types=gpu_types, validator=validator.hotkey)
    await validator.start()
    if layout == "multi":
        clusters = MultiClusterSandbox(fleet, seed=seed, timings=timings, miner_hotkey=miner_hotkey)
        await clusters.start()
        if kubeconfig is not None:
            clusters.write_kubeconfig(kubeconfig)
        return SandboxMiner(
            validator, clusters.control_plane, miner_hotkey, fleet, kubeconfig, clusters
        )
    cluster = SandboxCluster(seed=seed, nodes=fleet, timings=timings, kubeconfig_path=kubeconfig)
    await cluster.start()
    return SandboxMiner(validator, cluster, miner_hotkey, fleet, kubeconfig)


def add_to_validator(
    validator: SandboxValidator, miner_hotkey: str, node: FleetNode
) -> dict[str, Any]:
    """Register `node` as the miner's server at the sandbox validator (its GPUs get ids)."""
    return validator.add_server(
        miner_hotkey,
        name=node.name,
        gpu_identifier=node.gpu_type,
        gpu_count=node.gpu_count,
        host=node.external_ip,
        server_id=node.uid,
        is_tee=node.tee,
    )


async def register_fleet(
    world: SandboxMiner, inventory: PgInventory, *, clusters: MultiClusterSandbox | None = None
) -> list[Server]:
    """`add-node` for every fleet node: the validator learns the server and its GPUs (verified),
    and the inventory gets the server and GPU rows. With `clusters` (the multi-cluster layout)
    each row also gets its cluster's kubeconfig and agent URL, as the official registration
    stores them (the world's own clusters when it has them)."""
    clusters = clusters if clusters is not None else world.clusters
    servers = []
    for node in world.fleet:
        added = add_to_validator(world.validator, world.miner_hotkey, node)
        server = Server(
            server_id=node.uid,
            validator=node.validator,
            name=node.name,
            ip_address=node.external_ip,
            status="Ready",
            labels=node.to_object()["metadata"]["labels"],
            gpu_count=node.gpu_count,
            cpu_per_gpu=max(1, min(4, (node.cpu - 2) // node.gpu_count)),
            memory_per_gpu=max(1, int((node.memory_gib - 6) * 0.8 // node.gpu_count)),
            hourly_cost=hourly_cost(node.gpu_type),
            is_tee=node.tee,
        )
        if clusters is not None:
            server = server_row(server, clusters)
        await inventory.upsert_server(server)
        for gpu in added["gpus"]:
            await inventory.upsert_gpu(
                Gpu(
                    # the id the validator knows the GPU by (announce and claims name it)
                    gpu_id=gpu["uuid"],
                    validator=node.validator,
                    server_id=node.uid,
                    device_info={"uuid": gpu["uuid"], "index": gpu["device_index"]},
                    model_short_ref=node.gpu_type,
                    verified=True,
                )
            )
        servers.append(server)
    return servers


def server_row(server: Server, clusters: MultiClusterSandbox) -> Server:
    """`server` with the `kubeconfig` (JSON text) and `agent_api` of its own cluster, and the
    labels its node carries there."""
    member = clusters.members[server.name]
    return server.model_copy(
        update={
            "kubeconfig": member.kubeconfig_text(),
            "agent_api": member.agent_api,
            "labels": member.node.to_object()["metadata"]["labels"],
        }
    )


def _env(pod: dict[str, Any]) -> dict[str, str]:
    container = pod["spec"]["containers"][0]
    return {e["name"]: str(e.get("value", "")) for e in container.get("env", [])}


class PodBridge:
    """Plays the chute process: when a pod with a launch config becomes ready, it claims the
    config at the validator, proves itself and activates (the validator then broadcasts
    instance_created / verified / activated). A pod that crashes never does."""

    def __init__(self, world: SandboxMiner, *, interval: float = 0.05) -> None:
        self._world = world
        self._interval = interval
        self._done: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sandbox-pod-bridge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            self.step()
            await asyncio.sleep(self._interval)

    def step(self) -> None:
        for cluster in self._world.gpu_clusters:
            self._claim_ready(cluster.objects("pods", "chutes", "chutes/config-id"))

    def _claim_ready(self, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            config_id = pod["metadata"]["labels"]["chutes/config-id"]
            if config_id in self._done or not _pod_ready(pod):
                continue
            self._done.add(config_id)
            env = _env(pod)
            devices = [d for d in env.get("NVIDIA_VISIBLE_DEVICES", "").split(",") if d]
            try:
                self._world.validator.bring_up(
                    config_id,
                    devices,
                    env.get("CHUTES_EXTERNAL_HOST", ""),
                    int(env.get("CHUTES_PORT_PRIMARY", "0") or 0),
                )
            except (Rejected, KeyError) as e:  # refused: a real chute would exit here
                log.info("sandbox pod %s was refused by the validator: %s", config_id, e)


def _pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status", {})
    if status.get("phase") != "Running":
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
