"""`DirectSource`: the state of every server cluster, listed from each cluster's own API (the
`direct` source of docs/multi-cluster.md, for miners that run no chutes-monitor).

One read of a cluster is five list calls, run concurrently: chute Jobs, the namespace's pods,
chute Services, legacy Deployments and all nodes. Pods are joined to their Jobs here (by the
`chutes/deployment-id` label), so no call is repeated per Job. Responses are parsed from the
wire JSON straight into views, skipping the client library's model round trip.

Clusters are read concurrently, at most `fanout` at once, and each cluster's whole read is
bounded by `timeout`: a hanging cluster costs one timeout, never N × timeout, and never holds
the others up. A cluster that refuses, hangs, rejects the credential or has no usable
kubeconfig is a `ClusterUnknown` with the reason.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.cluster_source import (
    ClusterRead,
    ClusterSnapshot,
    ClusterUnknown,
    SourceKind,
)
from gepetto_core.adapters.kube_errors import TRANSLATED, translate_error
from gepetto_core.adapters.kube_views import (
    chute_job_view,
    legacy_deployment_view,
    node_view,
    pod_view,
    service_view,
)
from gepetto_core.adapters.server_clusters import ServerClusters
from gepetto_core.errors import ClusterError
from gepetto_core.models.cluster import PodView

Obj = dict[str, Any]
CHUTE_SELECTOR = f"{ko.LABEL_CHUTE}=true"


async def list_items(
    what: str, call: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
) -> list[Obj]:
    """One list call's `items` as wire JSON; library failures as the project's ClusterError."""
    try:
        response = await call(*args, _preload_content=False, **kw)
        async with response:
            body = await response.read()
            status = response.status
            reason = response.reason
    except TRANSLATED as e:
        raise translate_error(e, what) from e
    if not 200 <= status <= 299:
        error = ApiException(status=status, reason=reason)
        error.body = body
        raise translate_error(error, what)
    items: list[Obj] = json.loads(body).get("items") or []
    return items


def snapshot_of(name: str, raw: dict[str, list[Obj]], as_of: datetime) -> ClusterSnapshot:
    """The five listings of one cluster as a snapshot, pods joined to their Jobs."""
    pods = [pod_view(p) for p in raw["pods"]]
    by_deployment: defaultdict[str, list[PodView]] = defaultdict(list)
    for pod in pods:
        deployment_id = pod.labels.get(ko.LABEL_DEPLOYMENT_ID)
        if deployment_id:
            by_deployment[deployment_id].append(pod)
    jobs = []
    for job in raw["jobs"]:
        labels = (job.get("metadata") or {}).get("labels") or {}
        joined = by_deployment.get(labels.get(ko.LABEL_DEPLOYMENT_ID, ""), [])
        jobs.append(chute_job_view(job, joined))
    return ClusterSnapshot(
        name=name,
        jobs=jobs,
        legacy=[legacy_deployment_view(d) for d in raw["legacy"]],
        services=[service_view(s) for s in raw["services"]],
        nodes=[node_view(n) for n in raw["nodes"]],
        pods=pods,
        as_of=as_of,
        job_versions={j.name: j.resource_version for j in jobs if j.resource_version},
    )


class DirectSource:
    """A StateSource over the server clusters' own APIs. The clients belong to the
    `ServerClusters` passed in (its owner closes them)."""

    kind: SourceKind = "direct"

    def __init__(
        self, clients: ServerClusters, *, namespace: str, timeout: float, fanout: int
    ) -> None:
        self._clients = clients
        self._namespace = namespace
        self._timeout = timeout
        self._fanout = max(1, fanout)

    async def read(self, names: Sequence[str]) -> dict[str, ClusterRead]:
        gate = asyncio.Semaphore(self._fanout)

        async def one(name: str) -> ClusterRead:
            async with gate:
                return await self.read_one(name)

        reads = await asyncio.gather(*(one(n) for n in names))
        return {r.name: r for r in reads}

    async def read_one(self, name: str) -> ClusterRead:
        """One cluster, whole, within one timeout; any failure is a ClusterUnknown."""
        problem = self._clients.problem(name)
        if problem is not None:
            return ClusterUnknown(name, problem)
        try:
            async with asyncio.timeout(self._timeout):
                return await self._list_cluster(name)
        except TimeoutError:
            return ClusterUnknown(name, f"timed out after {self._timeout:g} s")
        except ClusterError as e:
            return ClusterUnknown(name, str(e).removeprefix(f"cluster {name}: "))
        except Exception as e:  # one cluster's surprise must not end the round
            return ClusterUnknown(name, f"cannot read: {type(e).__name__}: {e}")

    async def _list_cluster(self, name: str) -> ClusterSnapshot:
        api = self._clients.api(name)
        core, batch, apps = client.CoreV1Api(api), client.BatchV1Api(api), client.AppsV1Api(api)
        ns, chutes = self._namespace, CHUTE_SELECTOR
        as_of = datetime.now(UTC)
        # No per-request timeout: the whole read is bounded by one (see read_one).
        listings = await asyncio.gather(
            list_items("list jobs", batch.list_namespaced_job, ns, label_selector=chutes),
            list_items("list pods", core.list_namespaced_pod, ns),
            list_items("list services", core.list_namespaced_service, ns, label_selector=chutes),
            list_items(
                "list deployments", apps.list_namespaced_deployment, ns, label_selector=chutes
            ),
            list_items("list nodes", core.list_node),
        )
        raw = dict(zip(("jobs", "pods", "services", "legacy", "nodes"), listings, strict=True))
        return snapshot_of(name, raw, as_of)

    async def wait_pods_gone(self, name: str, deployment_id: str, wait_seconds: float) -> bool:
        return await self._clients.get(name).wait_pods_gone(deployment_id, wait_seconds)

    async def forget(self, name: str, gone: Sequence[tuple[str, str]]) -> None:
        """Nothing cached: every read is live."""

    async def clear_cluster(self, name: str) -> None:
        """Nothing cached: every read is live."""

    async def close(self) -> None:
        """Nothing of its own to close: the clients are the ServerClusters' owner's."""
