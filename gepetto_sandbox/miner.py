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
from typing import Any

from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.models.inventory import Gpu, Server
from gepetto_sandbox.cluster import FleetNode, PodTimings, SandboxCluster, build_fleet
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
    validator: SandboxValidator
    cluster: SandboxCluster
    miner_hotkey: str
    fleet: list[FleetNode]
    kubeconfig: Path | None = None

    async def stop(self) -> None:
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
) -> SandboxMiner:
    validator = SandboxValidator(seed=seed, miners=[miner_hotkey])
    validator.load_generated(chutes, seed=seed)
    fleet = build_fleet(seed=seed, count=nodes, gpu_types=gpu_types, validator=validator.hotkey)
    cluster = SandboxCluster(seed=seed, nodes=fleet, timings=timings, kubeconfig_path=kubeconfig)
    await validator.start()
    await cluster.start()
    return SandboxMiner(validator, cluster, miner_hotkey, fleet, kubeconfig)


async def register_fleet(
    world: SandboxMiner, inventory: PgInventory, *, clusters: MultiClusterSandbox | None = None
) -> list[Server]:
    """`add-node` for every fleet node: the validator learns the server and its GPUs (verified),
    and the inventory gets the server and GPU rows. With `clusters` (the multi-cluster layout)
    each row also gets its cluster's kubeconfig and agent URL, as the official registration
    stores them."""
    servers = []
    for node in world.fleet:
        added = world.validator.add_server(
            world.miner_hotkey,
            name=node.name,
            gpu_identifier=node.gpu_type,
            gpu_count=node.gpu_count,
            host=node.external_ip,
            server_id=node.uid,
            is_tee=node.tee,
        )
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
        for pod in self._world.cluster.objects("pods", "chutes", "chutes/config-id"):
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
