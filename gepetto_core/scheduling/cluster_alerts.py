"""Cluster reachability alerts, pure: from the clusters' previous and current health, what to
tell the channel. One alert per kind of change in a pass (gone unreachable, reachable again),
naming every cluster that changed, grouped by reason: "3 clusters unreachable: gpu-1, gpu-2,
gpu-7 — timed out".

Memory (`WasDown`) is just which clusters were last seen unreachable. A cluster that is
`unknown` (not read yet, no kubeconfig) keeps what was known of it; one that disappears from
the health list (its server was removed) is forgotten. On the first read after a start the
memory is empty: clusters found unreachable are announced, none is announced "back".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from gepetto_core.models.cluster import ClusterHealth
from gepetto_core.scheduling.reconcile_clusters import SINGLE_CLUSTER

MAX_NAMED = 20  # clusters named in one alert; the rest are counted

# cluster name -> it was unreachable at the last read
WasDown = Mapping[str, bool]


@dataclass(frozen=True)
class ClusterAlert:
    kind: Literal["unreachable", "back"]
    # (cluster name, why it is unreachable; None for "back"), sorted by name
    clusters: tuple[tuple[str, str | None], ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.clusters]

    @property
    def text(self) -> str:
        if self.clusters == ((SINGLE_CLUSTER, self.clusters[0][1]),):
            reason = self.clusters[0][1]
            if self.kind == "back":
                return "the cluster is reachable again"
            return "the cluster is unreachable" + (f" — {reason}" if reason else "")
        count = len(self.clusters)
        head = f"cluster {self.clusters[0][0]}" if count == 1 else f"{count} clusters"
        if self.kind == "back":
            tail = "" if count == 1 else f": {_names(self.names)}"
            return f"{head} reachable again{tail}"
        return f"{head} unreachable" + ("" if count == 1 else ":") + _by_reason(self.clusters)


def cluster_health_alerts(
    was_down: WasDown, current: Sequence[ClusterHealth]
) -> tuple[list[ClusterAlert], dict[str, bool]]:
    """The alerts for this read, and the memory to pass to the next one."""
    memory: dict[str, bool] = {}
    went_down: list[tuple[str, str | None]] = []
    came_back: list[tuple[str, str | None]] = []
    for health in current:
        before = was_down.get(health.name, False)
        if health.state == "unreachable":
            memory[health.name] = True
            if not before:
                went_down.append((health.name, health.error or None))
        elif health.state == "reachable":
            memory[health.name] = False
            if before:
                came_back.append((health.name, None))
        else:  # unknown: no news either way
            memory[health.name] = before
    alerts: list[ClusterAlert] = []
    if went_down:
        alerts.append(ClusterAlert("unreachable", tuple(sorted(went_down, key=_name))))
    if came_back:
        alerts.append(ClusterAlert("back", tuple(sorted(came_back, key=_name))))
    return alerts, memory


def _name(cluster: tuple[str, str | None]) -> str:
    return cluster[0]


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    more = len(names) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _by_reason(clusters: Sequence[tuple[str, str | None]]) -> str:
    """The clusters grouped by reason, the largest group first, each reason said once:
    `gpu-1, gpu-2 — timed out; gpu-7 — connection refused`."""
    groups: dict[str, list[str]] = {}
    for name, reason in clusters:
        groups.setdefault(reason or "", []).append(name)
    if len(clusters) == 1:
        reason = clusters[0][1]
        return f" — {reason}" if reason else ""
    parts = [
        _names(names) + (f" — {reason}" if reason else "")
        for reason, names in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    return " " + "; ".join(parts)
