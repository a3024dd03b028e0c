"""What a node can give a chute: Kubernetes resource quantities, the CPU and memory share per
GPU, and the ephemeral storage left (pure; `adapters/kube.py` feeds it node and pod objects).

Upstream bug fixed on purpose: a missing `nvidia.com/gpu.memory` label defaulted to 32 MiB and
gave 0 GiB per GPU; here a missing label means "no GPU-memory cap".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from gepetto_core.errors import InvalidInputError
from gepetto_core.models.cluster import NodeDisk

GIB: Final = 1024**3


# --------------------------------------------------------------------------- quantities


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "K": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
}


def parse_quantity(text: str | int | float) -> Decimal:
    """A Kubernetes resource quantity ("100Gi", "500M", "2", "250m") as a plain number."""
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY.match(text.strip())
    if match is None or match.group(2) not in _SUFFIX:
        raise InvalidInputError(f"not a Kubernetes quantity: {text!r}")
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    except InvalidOperation as e:
        raise InvalidInputError(f"not a Kubernetes quantity: {text!r}") from e


def quantity_gib(text: str | int | float | None, default: float = 0.0) -> float:
    """Bytes quantity in GiB; `default` when absent or unparseable."""
    if text is None:
        return default
    try:
        return float(parse_quantity(text) / GIB)
    except InvalidInputError:
        return default


# --------------------------------------------------------------------------- node sizing


def cpu_per_gpu(cpu_capacity: float, gpu_count: int) -> int:
    """Two cores stay with the system; each GPU gets up to four of the rest."""
    if gpu_count <= 0:
        return 1
    spare = cpu_capacity - 2
    if spare <= gpu_count:
        return 1
    return min(4, math.floor(spare / gpu_count))


def memory_per_gpu(memory_gib: float, gpu_count: int, gpu_memory_mib: int | None) -> int:
    """6 GiB stay with the system; 80 % of the rest is shared, capped at one GPU's memory."""
    if gpu_count <= 0:
        return 1
    spare = memory_gib - 6
    if spare <= gpu_count:
        return 1
    share = math.floor(spare * 0.8 / gpu_count)
    if gpu_memory_mib:
        share = min(share, gpu_memory_mib // 1024)
    return max(1, share)


# --------------------------------------------------------------------------- disk

DISK_RESERVE_GIB: Final = 20.0
UNKNOWN_CAPACITY_GIB: Final = 100.0


def compute_node_disk(
    node: str,
    capacity: str | None,
    pods: Iterable[Mapping[str, Any]],
    reserve_gib: float = DISK_RESERVE_GIB,
) -> NodeDisk:
    """Ephemeral storage left on a node: capacity − requests of its Running and Pending pods
    (containers and init containers) − a system reserve, never below zero. `pods` are pod
    objects in the Kubernetes JSON shape."""
    total = quantity_gib(capacity, default=UNKNOWN_CAPACITY_GIB)
    requested = 0.0
    for pod in pods:
        if (pod.get("status") or {}).get("phase") not in ("Running", "Pending"):
            continue
        spec = pod.get("spec") or {}
        for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
            wanted = ((container.get("resources") or {}).get("requests") or {}).get(
                "ephemeral-storage"
            )
            requested += quantity_gib(wanted)
    return NodeDisk(
        node=node,
        total_gib=total,
        requested_gib=requested,
        reserve_gib=reserve_gib,
        available_gib=max(0.0, total - requested - reserve_gib),
    )
