"""`KubeCluster`: gepetto's Kubernetes adapter on kubernetes-asyncio.

Reads nodes, pods, chute Jobs and legacy Deployments as views (`gepetto_core.models.cluster`);
creates and deletes the objects `gepetto_core.kube_objects` builds. Every library failure leaves
as one of the project's ClusterError types (`raise ... from e`). One `ApiClient` is passed in
(see `kube_connect.connect_api`); the adapter never closes it. Views of the objects it reads
are `kube_views.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from gepetto_core import kube_objects as ko
from gepetto_core import kube_service, node_capacity
from gepetto_core.adapters.kube_errors import TRANSLATED, translate_error
from gepetto_core.adapters.kube_views import (
    WORKER_LABEL,
    chute_job_view,
    legacy_deployment_view,
    node_view,
    pod_view,
    service_view,
)
from gepetto_core.errors import (
    ClusterConflictError,
    ClusterError,
    ClusterNotFoundError,
)
from gepetto_core.models.cluster import (
    ChuteJobView,
    ClusterHealth,
    DeployedChute,
    FleetReading,
    LegacyDeploymentView,
    NodeDisk,
    NodeView,
    PodListing,
    PodView,
    ServiceView,
)
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_core.ops.metrics import METRICS

T = TypeVar("T")
Obj = dict[str, Any]


# --------------------------------------------------------------------------- errors


async def _or_none(call: Awaitable[T]) -> T | ClusterError:
    try:
        return await call
    except ClusterError as e:
        return e


def _ok(result: T | ClusterError) -> T | None:
    return None if isinstance(result, ClusterError) else result


# --------------------------------------------------------------------------- adapter


class KubeCluster:
    """The cluster as gepetto uses it. Settings come in through the constructor."""

    def __init__(
        self,
        api: client.ApiClient,
        settings: ko.JobSettings,
        *,
        request_timeout: float = 30.0,
        write_timeout: float | None = None,
        disk_cache_seconds: float = 300.0,
        disk_reserve_gib: float = node_capacity.DISK_RESERVE_GIB,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._batch = client.BatchV1Api(api)
        self._apps = client.AppsV1Api(api)
        self.settings = settings
        self.namespace = settings.namespace
        self._timeout = request_timeout
        # Creates and deletes: connecting is bounded by `request_timeout` (a dead cluster fails
        # fast), the answer may take up to `write_timeout` (a busy API server's write is slow,
        # and giving up early leaves an object we think was never made).
        self._write_timeout = (request_timeout, write_timeout or request_timeout)
        self._disk_ttl = disk_cache_seconds
        self._reserve = disk_reserve_gib
        self._clock = clock
        self._disk_cache: dict[str, tuple[float, NodeDisk]] = {}
        self._disk_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._health = ClusterHealth(name="*", state="unknown", source="single")

    async def _call(self, what: str, call: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        return await self._request(what, self._timeout, call, args, kw)

    async def _write(
        self, what: str, call: Callable[..., Awaitable[T]], *args: Any, **kw: Any
    ) -> T:
        return await self._request(what, self._write_timeout, call, args, kw)

    async def _request(
        self, what: str, limit: float | tuple[float, float], call: Callable[..., Awaitable[T]],
        args: tuple[Any, ...], kw: dict[str, Any],
    ) -> T:  # fmt: skip
        """`limit`: the whole request's timeout, or (connect, read)."""
        try:
            with METRICS.kube_call(getattr(call, "__name__", "call")):
                return await call(*args, _request_timeout=limit, **kw)
        except TRANSLATED as e:
            raise translate_error(e, what) from e

    def _plain(self, model: Any) -> Obj:
        """A client model back in the Kubernetes JSON shape (camelCase keys)."""
        result: Obj = self._api.sanitize_for_serialization(model)
        return result

    # -- nodes -------------------------------------------------------------------------
    async def list_nodes(self, label_selector: str | None = WORKER_LABEL) -> list[NodeView]:
        kw = {"label_selector": label_selector} if label_selector else {}
        nodes = await self._call("list nodes", self._core.list_node, **kw)
        return [node_view(self._plain(n)) for n in nodes.items]

    async def get_node(self, name: str) -> NodeView:
        node = await self._call(f"read node {name}", self._core.read_node, name)
        return node_view(self._plain(node))

    async def node_disk(self, name: str) -> NodeDisk:
        """Cached for `disk_cache_seconds`; deploy and undeploy invalidate the node's entry."""
        cached = self._disk_cache.get(name)
        if cached and cached[0] > self._clock():
            return cached[1]
        async with self._disk_locks[name]:
            cached = self._disk_cache.get(name)
            if cached and cached[0] > self._clock():
                return cached[1]
            node = await self._call(f"read node {name}", self._core.read_node, name)
            pods = await self._call(
                f"list pods on {name}",
                self._core.list_pod_for_all_namespaces,
                field_selector=f"spec.nodeName={name}",
            )
            capacity = (self._plain(node).get("status") or {}).get("capacity") or {}
            disk = node_capacity.compute_node_disk(
                name,
                capacity.get("ephemeral-storage"),
                [self._plain(p) for p in pods.items],
                self._reserve,
            )
            self._disk_cache[name] = (self._clock() + self._disk_ttl, disk)
            return disk

    async def has_disk_available(self, name: str, gib: float) -> bool:
        return (await self.node_disk(name)).available_gib >= gib

    def invalidate_disk(self, name: str | None = None) -> None:
        if name is None:
            self._disk_cache.clear()
        else:
            self._disk_cache.pop(name, None)

    # -- pods and chute jobs -----------------------------------------------------------
    async def list_pods(
        self, namespace: str | None = None, label_selector: str | None = None
    ) -> list[PodView]:
        kw = {"label_selector": label_selector} if label_selector else {}
        if namespace is None:
            pods = await self._call("list pods", self._core.list_pod_for_all_namespaces, **kw)
        else:
            pods = await self._call(
                f"list pods in {namespace}", self._core.list_namespaced_pod, namespace, **kw
            )
        return [pod_view(self._plain(p)) for p in pods.items]

    async def read_pods(self, namespace: str | None = None) -> PodListing:
        """For `pods`: one cluster, read or raising (nothing is left unread)."""
        return PodListing(pods=await self.list_pods(namespace))

    async def pod_log_tail(self, deployment_id: str, lines: int = 10) -> list[str]:
        """The last `lines` lines of the chute container's log of a deployment's newest pod
        (what an operator needs in a failed-deploy alert); [] when there is none to read."""
        pods = await self.list_pods(self.namespace, f"{ko.LABEL_DEPLOYMENT_ID}={deployment_id}")
        if not pods:
            return []
        newest = max(pods, key=lambda p: p.created_at or datetime.min.replace(tzinfo=UTC))
        try:
            text = await self._call(
                f"read log of {newest.name}",
                self._core.read_namespaced_pod_log,
                newest.name,
                self.namespace,
                container="chute",
                tail_lines=lines,
            )
        except (ClusterNotFoundError, ClusterConflictError):
            return []
        return str(text).splitlines()[-lines:]

    async def _chute_pods_by_deployment(self, selector: str) -> dict[str, list[PodView]]:
        grouped: dict[str, list[PodView]] = defaultdict(list)
        for pod in await self.list_pods(self.namespace, selector):
            grouped[pod.labels.get(ko.LABEL_DEPLOYMENT_ID, "")].append(pod)
        return grouped

    async def list_chute_jobs(self) -> list[ChuteJobView]:
        jobs = await self._call(
            "list chute jobs",
            self._batch.list_namespaced_job,
            self.namespace,
            label_selector=f"{ko.LABEL_CHUTE}=true",
        )
        pods = await self._chute_pods_by_deployment(ko.LABEL_DEPLOYMENT_ID)
        views = []
        for job in jobs.items:
            raw = self._plain(job)
            deployment_id = ((raw.get("metadata") or {}).get("labels") or {}).get(
                ko.LABEL_DEPLOYMENT_ID, ""
            )
            views.append(chute_job_view(raw, pods.get(deployment_id, [])))
        return views

    async def get_chute_job(self, deployment_id: str) -> ChuteJobView:
        """Raises ClusterNotFoundError when the Job is gone."""
        name = ko.job_name(deployment_id)
        job = await self._call(
            f"read job {name}", self._batch.read_namespaced_job, name, self.namespace
        )
        pods = await self.list_pods(self.namespace, f"{ko.LABEL_DEPLOYMENT_ID}={deployment_id}")
        return chute_job_view(self._plain(job), pods)

    async def list_legacy_deployments(self) -> list[LegacyDeploymentView]:
        found = await self._call(
            "list legacy deployments",
            self._apps.list_namespaced_deployment,
            self.namespace,
            label_selector=f"{ko.LABEL_CHUTE}=true",
        )
        return [legacy_deployment_view(self._plain(d)) for d in found.items]

    async def list_chute_services(self) -> list[ServiceView]:
        found = await self._call(
            "list chute services",
            self._core.list_namespaced_service,
            self.namespace,
            label_selector=f"{ko.LABEL_CHUTE}=true",
        )
        return [service_view(self._plain(s)) for s in found.items]

    async def config_ids_in_use(self) -> set[str]:
        """Launch-config ids of every chute pod (the orphan scan of reconcile)."""
        pods = await self.list_pods(self.namespace, ko.LABEL_CONFIG_ID)
        return {p.labels[ko.LABEL_CONFIG_ID] for p in pods if p.labels.get(ko.LABEL_CONFIG_ID)}

    # -- one reconcile read -------------------------------------------------------------
    async def read_fleet(self) -> FleetReading:
        """The four listings reconcile needs; a listing that fails is None (unknown)."""
        jobs, legacy, services, nodes = await asyncio.gather(
            _or_none(self.list_chute_jobs()),
            _or_none(self.list_legacy_deployments()),
            _or_none(self.list_chute_services()),
            _or_none(self.list_nodes(None)),
        )
        errors = [r for r in (jobs, legacy, services, nodes) if isinstance(r, ClusterError)]
        now = datetime.now(UTC)
        if errors:
            self._health = ClusterHealth(
                name="*", state="unreachable", source="single",
                last_seen=self._health.last_seen, error=str(errors[0]),
            )  # fmt: skip
        else:
            self._health = ClusterHealth(
                name="*", state="reachable", source="single", last_seen=now, data_age_seconds=0.0
            )
        return FleetReading(
            jobs=_ok(jobs), legacy=_ok(legacy), services=_ok(services), nodes=_ok(nodes),
            health=[self._health],
        )  # fmt: skip

    def cluster_health(self) -> list[ClusterHealth]:
        return [self._health]

    async def delete_preflight(self, deployment_id: str, server_id: str | None) -> str | None:
        """One cluster, read live: nothing to check before a delete."""
        return None

    # -- code config maps --------------------------------------------------------------
    async def ensure_code_configmap(self, chute: Chute, *, replace: bool = False) -> str:
        """Create the chute's code ConfigMap; an existing one is kept unless `replace`."""
        body = ko.build_code_configmap(chute, self.namespace)
        name: str = body["metadata"]["name"]
        try:
            await self._write(
                f"create configmap {name}",
                self._core.create_namespaced_config_map,
                self.namespace,
                body,
            )
        except ClusterConflictError:
            if replace:
                await self._write(
                    f"replace configmap {name}",
                    self._core.replace_namespaced_config_map,
                    name,
                    self.namespace,
                    body,
                )
        return name

    async def delete_code_configmap(self, chute_id: str, version: str) -> None:
        name = ko.code_configmap_name(chute_id, version)
        with contextlib.suppress(ClusterNotFoundError):
            await self._write(
                f"delete configmap {name}",
                self._core.delete_namespaced_config_map,
                name,
                self.namespace,
            )

    # -- deploy --------------------------------------------------------------------------
    async def create_service(
        self, chute: Chute, deployment: Deployment, launch: ko.LaunchParams
    ) -> ServiceView:
        body = kube_service.build_chute_service(chute, deployment, self.settings, launch)
        created = await self._write(
            f"create service {body['metadata']['name']}",
            self._core.create_namespaced_service,
            self.namespace,
            body,
        )
        return service_view(self._plain(created))

    async def deploy_chute(
        self,
        chute: Chute,
        server: Server,
        gpus: Sequence[Gpu],
        deployment: Deployment,
        launch: ko.LaunchParams,
    ) -> DeployedChute:
        """Service first (its node ports go into the Job's env), then the Job. On any failure
        both are removed again before the error propagates."""
        if ko.needs_code_volume(chute):
            await self.ensure_code_configmap(chute)
        service: ServiceView | None = None
        try:
            service = await self.create_service(chute, deployment, launch)
            node_ports = {
                (key.split("/")[0], int(key.split("/")[1])): np
                for key, np in service.node_ports.items()
            }
            body = ko.build_chute_job(
                chute, server, gpus, deployment, self.settings, launch, node_ports
            )
            await self._write(
                f"create job {body['metadata']['name']}",
                self._batch.create_namespaced_job,
                self.namespace,
                body,
            )
        except BaseException:
            if service is not None:
                await asyncio.shield(self._remove_after_failed_deploy(deployment.deployment_id))
            raise
        finally:
            self.invalidate_disk(server.name)
        primary = service.node_port(ko.PRIMARY_PORT)
        assert primary is not None  # build_chute_job checked the node ports
        return DeployedChute(
            deployment_id=deployment.deployment_id,
            job_name=ko.job_name(deployment.deployment_id),
            service=service,
            node_name=server.name,
            primary_port=primary,
        )

    async def _remove_after_failed_deploy(self, deployment_id: str) -> None:
        with contextlib.suppress(ClusterError):
            await self._delete_job(deployment_id)
        with contextlib.suppress(ClusterError):
            await self._delete_services(deployment_id)

    # -- undeploy ------------------------------------------------------------------------
    async def undeploy(
        self, deployment_id: str, *, wait_seconds: float = 180.0, server_id: str | None = None
    ) -> bool:
        """Delete the Job (foreground, so its pods go first) or the legacy Deployment, then
        the Service; wait until the pods are gone. Already-deleted objects are fine. Returns
        False when pods were still there after `wait_seconds`."""
        node: str | None = None
        try:
            job = await self.get_chute_job(deployment_id)
            node = job.node_name
            await self._delete_job(deployment_id)
        except ClusterNotFoundError:
            with contextlib.suppress(ClusterNotFoundError):
                await self._write(
                    f"delete deployment {ko.job_name(deployment_id)}",
                    self._apps.delete_namespaced_deployment,
                    ko.job_name(deployment_id),
                    self.namespace,
                    propagation_policy="Foreground",
                )
        await self._delete_services(deployment_id)
        gone = await self.wait_pods_gone(deployment_id, wait_seconds)
        self.invalidate_disk(node)
        return gone

    async def _delete_job(self, deployment_id: str) -> None:
        name = ko.job_name(deployment_id)
        with contextlib.suppress(ClusterNotFoundError):
            await self._write(
                f"delete job {name}",
                self._batch.delete_namespaced_job,
                name,
                self.namespace,
                propagation_policy="Foreground",
                grace_period_seconds=self.settings.shutdown_seconds,
            )

    async def _delete_services(self, deployment_id: str) -> None:
        for name in (ko.service_name(deployment_id), ko.legacy_service_name(deployment_id)):
            with contextlib.suppress(ClusterNotFoundError):
                await self._write(
                    f"delete service {name}",
                    self._core.delete_namespaced_service,
                    name,
                    self.namespace,
                )

    async def wait_pods_gone(self, deployment_id: str, wait_seconds: float) -> bool:
        """Watch the deployment's pods until none is left (True) or `wait_seconds` pass (False)."""
        selector = f"{ko.LABEL_DEPLOYMENT_ID}={deployment_id}"
        deadline = self._clock() + wait_seconds
        while True:
            listed = await self._call(
                "list pods",
                self._core.list_namespaced_pod,
                self.namespace,
                label_selector=selector,
            )
            remaining = {p.metadata.name for p in listed.items}
            if not remaining:
                return True
            left = deadline - self._clock()
            if left <= 0:
                return False
            try:
                async with asyncio.timeout(left + 1):
                    remaining = await self._watch_until_empty(
                        selector, listed.metadata.resource_version, remaining, left
                    )
            except TimeoutError:
                return False
            if not remaining:
                return True

    async def _watch_until_empty(
        self, selector: str, resource_version: str, names: set[str], seconds: float
    ) -> set[str]:
        stream = watch.Watch()
        try:
            async for event in stream.stream(
                self._core.list_namespaced_pod,
                self.namespace,
                label_selector=selector,
                resource_version=resource_version,
                timeout_seconds=max(1, int(seconds)),
            ):
                name = event["raw_object"]["metadata"]["name"]
                if event["type"] == "DELETED":
                    names.discard(name)
                elif event["type"] == "ADDED":
                    names.add(name)
                if not names:
                    break
        except ApiException as e:
            if e.status != 410:  # an expired RV: the caller lists again
                raise translate_error(e, "watch pods") from e
        except (aiohttp.ClientError, OSError) as e:
            raise translate_error(e, "watch pods") from e
        finally:
            await stream.close()
        return names
