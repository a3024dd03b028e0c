"""`nodes`, `pods` and `insts`: what the miner has, from the inventory and the cluster (and, for
instances, what the validator says of them)."""

from __future__ import annotations

import asyncio
from collections import Counter

from gepetto_core.commands.context import CommandContext
from gepetto_core.commands.node_table import nodes_table
from gepetto_core.commands.resolve import chute_label, instance_of, resolve_server
from gepetto_core.errors import ClusterError, ClusterUnavailableError
from gepetto_core.models.cluster import ChuteJobView, NodeDisk, PodView
from gepetto_core.models.inventory import Deployment
from gepetto_core.scheduling.reconcile_clusters import is_single_layout
from gepetto_core.services.sync import ListName
from gepetto_core.views import Cell, Column, ColumnKind, Table

K = ColumnKind

POD_COLUMNS = [
    Column(key="namespace", title="namespace"),
    Column(key="node", title="node"),
    Column(key="name", title="name"),
    Column(key="phase", title="phase"),
    Column(key="pod_ip", title="pod IP"),
    Column(key="started", title="started", kind=K.DATETIME),
    Column(key="ready", title="ready", kind=K.BOOL),
    Column(key="restarts", title="restarts", kind=K.INT),
]

INSTANCE_COLUMNS = [
    Column(key="deployment_id", title="deployment_id", kind=K.ID),
    Column(key="node", title="node"),
    Column(key="chute", title="chute"),
    Column(key="gpus", title="gpus", kind=K.INT),
    Column(key="ready", title="ready", kind=K.BOOL),
    Column(key="status", title="status"),
    Column(key="phase", title="phase"),
    Column(key="started", title="started", kind=K.DATETIME),
    Column(key="reason", title="reason"),
    Column(key="instance_id", title="instance_id", kind=K.ID),
    Column(key="active", title="active", kind=K.BOOL),
    Column(key="verified", title="verified", kind=K.BOOL),
]


async def _disk(ctx: CommandContext, name: str, *, one_cluster: bool) -> NodeDisk | None:
    try:
        return await ctx.rt.cluster.node_disk(name)
    except ClusterUnavailableError:
        if one_cluster:  # the one API server is down: nothing else can be read either
            raise
        return None  # one server's cluster is down: its row says so, the others are shown
    except ClusterError:  # the node went away between the two calls
        return None


async def nodes_view(ctx: CommandContext) -> Table:
    rt = ctx.rt
    kube_nodes = {n.name: n for n in await rt.cluster.list_nodes(None)}
    health = rt.cluster.cluster_health()
    one_cluster = is_single_layout(health)
    servers = await rt.inventory.list_servers()
    gpus = await rt.inventory.list_gpus()
    names = [s.name for s in servers if s.name in kube_nodes]
    found = await asyncio.gather(*(_disk(ctx, n, one_cluster=one_cluster) for n in names))
    disks = dict(zip(names, found, strict=True))
    removals = await rt.state.list_server_removals()
    return nodes_table(servers, gpus, kube_nodes, disks, health, removals)


async def pods_view(ctx: CommandContext) -> Table:
    namespace = ctx.command.opts.get("namespace")
    listing = await ctx.rt.cluster.read_pods(namespace)
    found = sorted(listing.pods, key=lambda p: (p.namespace, p.node_name or "", p.name))
    rows: list[dict[str, Cell]] = [
        {
            "namespace": p.namespace,
            "node": p.node_name,
            "name": p.name,
            "phase": p.phase,
            "pod_ip": p.pod_ip,
            "started": p.started_at or p.created_at,
            "ready": p.ready,
            "restarts": p.restart_count,
        }
        for p in found
    ]
    where = f"in {namespace}" if namespace else "in all namespaces"
    unread = "; ".join(f"{name}: {why}" for name, why in sorted(listing.unread.items()))
    return Table(
        title=f"Pods {where} ({len(rows)})",
        columns=POD_COLUMNS,
        rows=rows,
        data_label=None,
        note=f"{len(listing.unread)} cluster(s) not read, their pods are not listed: {unread}"
        if unread
        else None,
    )


def job_status(row: Deployment, job: ChuteJobView | None) -> str:
    if job is None:
        return "deploying" if row.stub else "job missing"
    if job.deleting:
        return "terminating"
    if job.status.failed:
        return "failed"
    if job.status.succeeded:
        return "completed"
    if job.ready:
        return "running"
    return "starting"


def pod_reason(pod: PodView | None) -> str | None:
    if pod is None:
        return None
    for state in (pod.state, pod.last_state):
        if state is not None and state.state != "running" and (state.reason or state.message):
            return ": ".join(p for p in (state.reason, state.message) if p)
    return None


async def insts_view(ctx: CommandContext) -> Table:
    rt = ctx.rt
    servers = {s.server_id: s for s in await rt.inventory.list_servers()}
    deployments = await rt.inventory.list_deployments()
    node_key = ctx.command.opts.get("node")
    if node_key:
        wanted = resolve_server(list(servers.values()), node_key)
        deployments = [d for d in deployments if d.server_id == wanted.server_id]
    chutes = {c.chute_id: c for c in await rt.inventory.list_chutes()}
    gpu_counts = Counter(g.deployment_id for g in await rt.inventory.list_gpus() if g.deployment_id)
    jobs = {j.deployment_id: j for j in await rt.cluster.list_chute_jobs() if j.deployment_id}
    # What the validator says is a bonus here: without it, the database's flags are shown.
    snaps, age = await ctx.snapshots([ListName.INSTANCES], required=False)
    instances = [i for s in snaps.values() for i in s.instances.items.values()]
    rows: list[dict[str, Cell]] = []
    for d in deployments:
        job = jobs.get(d.deployment_id)
        pod = job.pods[0] if job and job.pods else None
        remote = instance_of(d, instances) if age is not None else None
        chute = chutes.get(d.chute_id)
        server = servers.get(d.server_id)
        rows.append(
            {
                "deployment_id": d.deployment_id,
                "node": server.name if server else d.server_id,
                "chute": chute_label(chute, d.chute_id),
                "gpus": gpu_counts.get(d.deployment_id, 0),
                "ready": bool(job and job.ready),
                "status": job_status(d, job),
                "phase": pod.phase if pod else None,
                "started": d.created_at,
                "reason": pod_reason(pod),
                "instance_id": d.instance_id or (remote.instance_id if remote else None),
                "active": remote.active if remote else d.active,
                "verified": remote.verified if remote else d.verified_at is not None,
            }
        )
    return Table(
        title=f"Chute instances ({len(rows)})",
        columns=INSTANCE_COLUMNS,
        rows=rows,
        data_age_seconds=age,
        data_label="validator instance data",
    )
