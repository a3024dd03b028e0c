"""A seeded fleet of GPU nodes labelled the way a chutes miner labels them."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

# short ref → (GPU memory MiB, GPUs per node, product name)
GPU_TYPES: dict[str, tuple[int, int, str]] = {
    "h100": (81559, 8, "NVIDIA-H100-80GB-HBM3"),
    "h200": (143771, 8, "NVIDIA-H200"),
    "a100": (81920, 8, "NVIDIA-A100-SXM4-80GB"),
    "l40s": (46068, 4, "NVIDIA-L40S"),
    "a6000": (49140, 4, "NVIDIA-RTX-A6000"),
    "4090": (24564, 2, "NVIDIA-GeForce-RTX-4090"),
}

DEFAULT_VALIDATOR = "5Dt7HZ7Zpw4DppPxFM7Ke3Cm7sDAWhsZXmM5ZAmE7dSVJbcQ"


@dataclass(frozen=True)
class FleetNode:
    name: str
    uid: str
    gpu_type: str
    gpu_count: int
    gpu_ids: tuple[str, ...]
    external_ip: str
    validator: str = DEFAULT_VALIDATOR
    tee: bool = False
    cpu: int = 64
    memory_gib: int = 512
    ephemeral_gib: int = 1000
    ready: bool = True
    extra_labels: dict[str, str] = field(default_factory=dict)

    def to_object(self) -> dict[str, Any]:
        gpu_memory = GPU_TYPES.get(self.gpu_type, (24576, 1, self.gpu_type))[0]
        product = GPU_TYPES.get(self.gpu_type, (0, 0, self.gpu_type))[2]
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "gpu-short-ref": self.gpu_type,
            "chutes/validator": self.validator,
            "chutes/worker": "true",
            "chutes/external-ip": self.external_ip,
            "nvidia.com/gpu.count": str(self.gpu_count),
            "nvidia.com/gpu.memory": str(gpu_memory),
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": product,
            **({"chutes/tee": "true"} if self.tee else {}),
            **self.extra_labels,
        }
        capacity = {
            "cpu": str(self.cpu),
            "memory": f"{self.memory_gib * 1024 * 1024}Ki",
            "ephemeral-storage": f"{self.ephemeral_gib * 1024 * 1024}Ki",
            "nvidia.com/gpu": str(self.gpu_count),
            "pods": "110",
        }
        return node_object(self.name, self.uid, labels, capacity, self.external_ip, self.ready)


def node_object(
    name: str,
    uid: str,
    labels: dict[str, str],
    capacity: dict[str, str],
    ip: str,
    ready: bool = True,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "uid": uid, "labels": labels, "annotations": {}},
        "spec": {"podCIDR": "10.42.0.0/24"},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": node_conditions(ready),
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"boot.{name}")),
                "containerRuntimeVersion": "containerd://1.7.23-k3s2",
                "kernelVersion": "6.8.0-sandbox",
                "kubeProxyVersion": "v1.32.4+k3s1",
                "kubeletVersion": "v1.32.4+k3s1",
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, f"machine.{name}").hex,
                "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.5 LTS",
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"system.{name}")),
            },
        },
    }


def node_conditions(ready: bool) -> list[dict[str, Any]]:
    stamp = "2026-01-01T00:00:00Z"
    conditions = [
        {"type": kind, "status": "False", "reason": f"KubeletHasNo{kind}"}
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True" if ready else "Unknown",
            "reason": "KubeletReady" if ready else "NodeStatusUnknown",
            "message": "kubelet is posting ready status"
            if ready
            else "Kubelet stopped posting node status.",
        }
    )
    for cond in conditions:
        cond["lastHeartbeatTime"] = stamp
        cond["lastTransitionTime"] = stamp
    return conditions


def build_fleet(
    seed: int = 0,
    count: int = 4,
    gpu_types: tuple[str, ...] = ("h100", "a6000", "l40s", "h200"),
    validator: str = DEFAULT_VALIDATOR,
    tee_every: int = 0,
) -> list[FleetNode]:
    """`count` GPU nodes cycling through `gpu_types`; every `tee_every`-th node is TEE."""
    rng = random.Random(seed)
    nodes = []
    for i in range(count):
        gpu_type = gpu_types[i % len(gpu_types)]
        per_node = GPU_TYPES.get(gpu_type, (0, 1, ""))[1]
        nodes.append(
            FleetNode(
                name=f"{gpu_type}-{i}",
                uid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                gpu_type=gpu_type,
                gpu_count=per_node,
                gpu_ids=tuple(uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(per_node)),
                external_ip=f"203.0.113.{10 + i}",
                validator=validator,
                tee=bool(tee_every) and (i + 1) % tee_every == 0,
                cpu=16 * per_node,
                memory_gib=128 * per_node,
                ephemeral_gib=rng.choice((500, 1000, 2000)),
            )
        )
    return nodes
