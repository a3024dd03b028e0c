"""The `nodes` table, pure: each server from the inventory beside its Kubernetes node, its disk
and, in the multi-cluster layout (one k3s cluster per GPU server), its cluster's health and the
age of the data behind the row. The single layout (one health entry named "*") keeps the
table it always had."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from gepetto_core.models.cluster import ClusterHealth, NodeDisk, NodeView
from gepetto_core.models.inventory import Gpu, Server
from gepetto_core.scheduling.reconcile_clusters import is_single_layout
from gepetto_core.views import Cell, Column, ColumnKind, Table

K = ColumnKind
MAX_NAMED = 10  # unreachable clusters named in the footer

NODE_COLUMNS = [
    Column(key="server_id", title="server_id", kind=K.ID),
    Column(key="node", title="node"),
    Column(key="ip", title="ip"),
    Column(key="status", title="status"),
    Column(key="gpu", title="gpu"),
    Column(key="gpus_total", title="gpus", kind=K.INT),
    Column(key="gpus_used", title="used", kind=K.INT),
    Column(key="hourly_cost", title="cost/GPU", kind=K.MONEY),
    Column(key="disk_total_gb", title="disk GB", kind=K.FLOAT),
    Column(key="disk_used_gb", title="disk used GB", kind=K.FLOAT),
    Column(key="locked", title="locked", kind=K.BOOL),
]
# Multi-cluster layout: after `status`.
CLUSTER_COLUMNS = [
    Column(key="cluster", title="cluster"),
    Column(key="data_age", title="data age", kind=K.DURATION),
]


def node_status(node: NodeView | None) -> str:
    if node is None:
        return "missing"
    status = "Ready" if node.ready else "NotReady"
    return status + (",SchedulingDisabled" if node.unschedulable else "")


def cluster_state(health: ClusterHealth | None) -> str:
    """What a row says of its cluster: reachable, unknown, or unreachable with the reason."""
    if health is None:
        return "unknown"
    if health.state == "unreachable" and health.error:
        return f"unreachable: {health.error}"
    return health.state


def nodes_table(
    servers: Sequence[Server],
    gpus: Sequence[Gpu],
    kube_nodes: Mapping[str, NodeView],
    disks: Mapping[str, NodeDisk | None],
    health: Sequence[ClusterHealth],
    removals: Mapping[str, str] | None = None,
) -> Table:
    """`removals`: servers waiting for reconcile to remove them (server id -> why)."""
    multi = not is_single_layout(health)
    by_cluster = {h.name: h for h in health}
    rows: list[dict[str, Cell]] = []
    for server in servers:
        row = _server_row(server, gpus, kube_nodes.get(server.name), disks.get(server.name))
        if multi:
            cluster = by_cluster.get(server.name)
            if row["status"] == "missing" and (cluster is None or cluster.state != "reachable"):
                row["status"] = "unknown"  # a cluster not read says nothing of its node
            row["cluster"] = cluster_state(cluster)
            row["data_age"] = cluster.data_age_seconds if cluster is not None else None
        rows.append(row)
    known = {s.name for s in servers}
    strays = sorted(n for n, v in kube_nodes.items() if v.worker and n not in known)
    notes = [f"GPU nodes without a server row: {', '.join(strays)}"] if strays else []
    leaving = sorted(s.name for s in servers if removals and s.server_id in removals)
    if leaving:
        notes.append(f"to be removed once their deployments are (recycle): {', '.join(leaving)}")
    if multi:
        notes.append(_health_summary([by_cluster.get(s.name) for s in servers]))
    columns = NODE_COLUMNS
    if multi:
        at = [c.key for c in NODE_COLUMNS].index("status") + 1
        columns = [*NODE_COLUMNS[:at], *CLUSTER_COLUMNS, *NODE_COLUMNS[at:]]
    return Table(
        title=f"Servers ({len(rows)})",
        columns=columns,
        rows=rows,
        note=" · ".join(notes) or None,
        data_label=None,  # inventory and cluster only: no validator data behind this table
    )


def _server_row(
    server: Server, gpus: Sequence[Gpu], node: NodeView | None, disk: NodeDisk | None
) -> dict[str, Cell]:
    mine = [g for g in gpus if g.server_id == server.server_id]
    models = Counter(g.model_short_ref for g in mine)
    return {
        "server_id": server.server_id,
        "node": server.name,
        "ip": server.ip_address or (node.external_ip if node else None),
        "status": node_status(node),
        "gpu": ", ".join(sorted(models)) or (node.gpu_short_ref if node else None),
        "gpus_total": len(mine) or server.gpu_count,
        "gpus_used": sum(1 for g in mine if g.deployment_id),
        "hourly_cost": server.hourly_cost,
        "disk_total_gb": round(disk.total_gib, 1) if disk else None,
        "disk_used_gb": round(disk.requested_gib, 1) if disk else None,
        "locked": server.locked,
    }


def _health_summary(health: Sequence[ClusterHealth | None]) -> str:
    """The servers' clusters by state, naming the unreachable ones (the first few)."""
    states = Counter(h.state if h is not None else "unknown" for h in health)
    down = sorted(h.name for h in health if h is not None and h.state == "unreachable")
    parts = [f"{states[s]} {s}" for s in ("reachable", "unreachable", "unknown") if states[s]]
    text = "clusters: " + (", ".join(parts) or "none")
    if not down:
        return text
    named = ", ".join(down[:MAX_NAMED]) + (", …" if len(down) > MAX_NAMED else "")
    return f"{text} ({named})"
