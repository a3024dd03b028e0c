"""Where the multi-cluster layout reads each server cluster's state from (docs/multi-cluster.md).

Two sources answer the same question, "what is on these clusters now":
- `direct`: list each cluster's API ourselves (adapters/direct_source.py);
- `monitor`: read the chutes-monitor cache in Redis, `clusters:{cluster}:resources:{type}`
  hashes plus its pub/sub channels (adapters/monitor_source.py).

A cluster that cannot be read is a `ClusterUnknown` with the reason, never an empty snapshot:
reconcile must not remove what it cannot see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from gepetto_core.models.cluster import (
    ChuteJobView,
    LegacyDeploymentView,
    NodeView,
    PodView,
    ServiceView,
)

SourceKind = Literal["direct", "monitor"]


@dataclass(frozen=True)
class ClusterSnapshot:
    """One cluster, read whole. Jobs carry their pods (joined by chutes/deployment-id);
    `pods` is every pod of the chutes namespace (disk arithmetic, `pods`)."""

    name: str
    jobs: Sequence[ChuteJobView]
    legacy: Sequence[LegacyDeploymentView]
    services: Sequence[ServiceView]
    nodes: Sequence[NodeView]
    pods: Sequence[PodView]
    # When the data was true: the read itself (direct) or the cluster's last heartbeat or
    # snapshot in the cache (monitor).
    as_of: datetime
    # Job name -> its resourceVersion as read (the delete preflight compares it with the live one).
    job_versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterUnknown:
    """A cluster that could not be read, and why (refused, timed out, unhealthy in the
    monitor, not registered with the monitor, no kubeconfig stored)."""

    name: str
    reason: str


ClusterRead = ClusterSnapshot | ClusterUnknown


class StateSource(Protocol):
    kind: SourceKind

    async def read(self, names: Sequence[str]) -> dict[str, ClusterRead]:
        """One entry per name. Clusters are read concurrently (bounded), and the whole call
        takes at most about one per-cluster timeout however many clusters hang."""
        ...

    async def wait_pods_gone(self, name: str, deployment_id: str, wait_seconds: float) -> bool:
        """Wait until no pod of the deployment is left on that cluster (False: still there
        after `wait_seconds`)."""
        ...

    async def forget(self, name: str, gone: Sequence[tuple[str, str]]) -> None:
        """Objects (resource type, name in the chutes namespace) a live read of cluster `name`
        found gone: a cache drops them (a direct source has nothing to drop)."""
        ...

    async def clear_cluster(self, name: str) -> None:
        """The cluster left the fleet and its agent could not unregister it: a cache drops
        all of it, as the monitor's own `clear_cluster` does (a direct source has nothing)."""
        ...

    async def close(self) -> None: ...
