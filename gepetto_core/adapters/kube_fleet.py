"""`FleetCluster`: the Cluster port over the multi-cluster layout, where every GPU server is
its own k3s cluster (docs/multi-cluster.md).

- Reads: one round reads every server cluster through a `StateSource` (direct API lists or
  the chutes-monitor cache), bounded and concurrent; concurrent callers share one round. A
  cluster that cannot be read is named in `FleetReading.unknown` with the reason, never
  reported empty.
- Writes go to the server's own cluster (`ServerClusters`): Service, Job and, when the chute
  mounts its code, the code ConfigMap. A cluster known to be unreachable is refused at once
  instead of costing a timeout.
- `delete_preflight` runs the official checks before a delete, without its crashes: a Job
  seen in two clusters is a veto with a reason, not an exception.
- Code ConfigMaps fan out to every non-TEE server cluster; one cluster failing does not stop
  the others (see `ensure_code_configmap`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from kubernetes_asyncio import client

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.cluster_source import (
    ClusterRead,
    ClusterSnapshot,
    ClusterUnknown,
    StateSource,
)
from gepetto_core.adapters.fleet_book import (
    SeenJob,
    health_after,
    health_reason,
    label_matcher,
    merge_reads,
    seen_jobs,
    where_seen,
)
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.adapters.kube_errors import TRANSLATED, translate_error
from gepetto_core.adapters.kube_views import WORKER_LABEL
from gepetto_core.adapters.server_clusters import NO_KUBECONFIG, ServerClusters
from gepetto_core.errors import ClusterError, ClusterNotFoundError, ClusterUnavailableError
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

LoadServers = Callable[[], Awaitable[Sequence[Server]]]
T = TypeVar("T")


# A stale read's veto stands only after this many more reads, this far apart: a monitor cache
# follows the API by a watch, normally well within a second.
STALE_RECHECKS = 3
STALE_RECHECK_SECONDS = 0.5


class FleetCluster:
    """Kubernetes as the services see it when each server is its own cluster."""

    def __init__(
        self,
        clients: ServerClusters,
        source: StateSource,
        load_servers: LoadServers,
        *,
        namespace: str,
        timeout: float,
        fanout: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clients = clients
        self._source = source
        self._load_servers = load_servers
        self.namespace = namespace
        self._timeout = timeout
        self._fanout = max(1, fanout)
        self._now = clock
        self._servers: dict[str, Server] = {}  # by name, as last loaded
        self._health: dict[str, ClusterHealth] = {}
        # cluster -> deployment id -> its Job, from the cluster's last good read
        self._jobs: dict[str, dict[str, SeenJob]] = {}
        self._pods: dict[str, list[PodView]] = {}  # cluster -> pods of the last round's read
        # cluster -> deployment ids of its Services in the last good read (a Service can
        # outlive its Job, e.g. a deploy that failed between the two)
        self._services: dict[str, set[str]] = {}
        self._round: asyncio.Task[FleetReading] | None = None

    # -- reads ----------------------------------------------------------------------------
    async def read_fleet(self) -> FleetReading:
        """One round over every server cluster; a caller arriving while a round is in flight
        gets that round's result."""
        round_ = self._round
        if round_ is None or round_.done():
            round_ = self._round = asyncio.create_task(self._read_round(), name="fleet-read")
            # its callers may all be gone (cancelled) by the time it fails: no stray warning
            round_.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(round_)

    async def _read_round(self) -> FleetReading:
        servers = await self._refresh_servers()
        stored = [s.name for s in servers if s.kubeconfig and s.kubeconfig.strip()]
        reads = await self._read_source(stored)
        for server in servers:
            if server.name not in reads:
                reason = NO_KUBECONFIG if server.name not in stored else "no answer from source"
                reads[server.name] = ClusterUnknown(server.name, reason)
        now = self._now()
        for name, read in reads.items():
            self._record(name, read, now)
        return merge_reads(reads, self.cluster_health())

    def _record(self, name: str, read: ClusterRead, now: datetime) -> None:
        self._health[name] = health_after(
            read, self._health.get(name), source=self._source.kind, now=now,
            usable=self._clients.problem(name) is None,
        )  # fmt: skip
        if isinstance(read, ClusterSnapshot):
            self._jobs[name] = seen_jobs(read)
            self._pods[name] = list(read.pods)
            self._services[name] = {v.deployment_id for v in read.services if v.deployment_id}
        else:
            self._pods.pop(name, None)

    async def _reread(self, name: str) -> None:
        """Read one server's cluster again (the delete preflight judges a fresh read, not the
        last round's: a Job that became ready since then is not "stale")."""
        reads = await self._read_source([name])
        self._record(
            name, reads.get(name) or ClusterUnknown(name, "no answer from source"), self._now()
        )

    async def _read_source(self, names: list[str]) -> dict[str, ClusterRead]:
        """The source's reads of `names`; a source that fails as a whole (its Redis is down)
        makes every cluster unknown for this round, never empty."""
        if not names:
            return {}
        try:
            got = await self._source.read(names)
        except Exception as e:  # any failure of the source: nothing was read
            reason = f"{self._source.kind} source failed: {type(e).__name__}: {e}"
            return {n: ClusterUnknown(n, reason) for n in names}
        return {n: got[n] for n in names if n in got}

    async def _refresh_servers(self) -> list[Server]:
        """Load the server rows; match the clients and the bookkeeping to them."""
        servers = list(await self._load_servers())
        self._servers = {s.name: s for s in servers}
        self._clients.sync(servers)
        for book in (self._health, self._jobs, self._pods, self._services):
            for gone in [n for n in book if n not in self._servers]:
                del book[gone]
        return servers

    def cluster_health(self) -> list[ClusterHealth]:
        """Every server's cluster as last read (a server not read yet: unknown)."""
        names = sorted(set(self._health) | set(self._servers))
        return [
            self._health.get(n)
            or ClusterHealth(
                name=n, state="unknown", source=self._source.kind, error="not read yet"
            )
            for n in names
        ]

    async def list_chute_jobs(self) -> list[ChuteJobView]:
        return (await self.read_fleet()).jobs or []

    async def list_legacy_deployments(self) -> list[LegacyDeploymentView]:
        return (await self.read_fleet()).legacy or []

    async def list_chute_services(self) -> list[ServiceView]:
        return (await self.read_fleet()).services or []

    async def list_nodes(self, label_selector: str | None = WORKER_LABEL) -> list[NodeView]:
        """Every read cluster's nodes, filtered as the API would filter them."""
        matches = label_matcher(label_selector)
        return [n for n in (await self.read_fleet()).nodes or [] if matches(n.labels)]

    async def list_pods(
        self, namespace: str | None = None, label_selector: str | None = None
    ) -> list[PodView]:
        """Pods of the chutes namespace on every read cluster (what the sources list)."""
        matches = label_matcher(label_selector)
        return [
            p
            for p in self._pods_read(await self.read_fleet())
            if (namespace is None or p.namespace == namespace) and matches(p.labels)
        ]

    def _pods_read(self, reading: FleetReading) -> list[PodView]:
        return [
            p
            for name in sorted(self._pods)
            if name not in reading.unknown
            for p in self._pods[name]
        ]

    async def read_pods(self, namespace: str | None = None) -> PodListing:
        """For `pods`: the chutes namespace as the round read it (what the sources list); any
        other namespace, or all of them, listed live on every server cluster, `fanout` at a
        time, each bounded by the timeout. A cluster not read is in `unread`, with why."""
        if namespace == self.namespace:
            reading = await self.read_fleet()
            return PodListing(pods=self._pods_read(reading), unread=dict(reading.unknown))
        servers = await self._refresh_servers()
        found, failed = await self._on_each(
            [s.name for s in servers if s.kubeconfig],
            lambda c: c.list_pods(namespace),
            self._timeout,
        )
        unread = {s.name: NO_KUBECONFIG for s in servers if not s.kubeconfig} | failed
        pods = [p for s in servers for p in found.get(s.name, [])]
        return PodListing(pods=pods, unread=unread)

    # -- routing --------------------------------------------------------------------------
    def _writable(self, name: str) -> KubeCluster:
        """Server `name`'s cluster for a live call; refused at once when the last read found
        it unreachable (the caller retries after a read that sees it back)."""
        health = self._health.get(name)
        if health is not None and health.state == "unreachable":
            raise ClusterUnavailableError(health_reason(health, name) or name)
        server = self._servers.get(name)
        if server is not None:
            self._clients.ensure(server)
        return self._clients.get(name)

    async def _server_by_id(self, server_id: str | None) -> Server | None:
        if server_id is None:
            return None
        for server in self._servers.values():
            if server.server_id == server_id:
                return server
        for server in await self._refresh_servers():
            if server.server_id == server_id:
                return server
        return None

    async def _clusters_of(self, deployment_id: str) -> tuple[list[str], FleetReading | None]:
        """Where the deployment's Job (or, without one, its Service) was last seen; a fresh
        round when nowhere yet."""
        seen = self._where(deployment_id)
        if seen:
            return seen, None
        reading = await self.read_fleet()
        return self._where(deployment_id), reading

    def _where(self, deployment_id: str) -> list[str]:
        jobs = [s.cluster for s in where_seen(self._jobs, deployment_id)]
        return jobs or sorted(n for n, ids in self._services.items() if deployment_id in ids)

    # -- deploy and undeploy --------------------------------------------------------------
    async def deploy_chute(
        self,
        chute: Chute,
        server: Server,
        gpus: Sequence[Gpu],
        deployment: Deployment,
        launch: ko.LaunchParams,
    ) -> DeployedChute:
        """Service, Job (and the code ConfigMap when the chute mounts one) in the server's
        own cluster; `KubeCluster.deploy_chute` removes what it made when a step fails."""
        self._servers[server.name] = server  # the caller's row is the freshest kubeconfig
        deployed = await self._writable(server.name).deploy_chute(
            chute, server, gpus, deployment, launch
        )
        self._jobs.setdefault(server.name, {})[deployment.deployment_id] = SeenJob(
            server.name, deployed.job_name, None
        )
        return deployed

    async def undeploy(
        self, deployment_id: str, *, wait_seconds: float = 180.0, server_id: str | None = None
    ) -> bool:
        """Delete in the cluster(s) where the Job was last seen, else in the server's. Raises
        ClusterUnavailableError when it is nowhere seen but some cluster could not be read."""
        targets, reading = await self._clusters_of(deployment_id)
        if not targets:
            server = await self._server_by_id(server_id)
            if server is not None:
                targets = [server.name]
            elif reading is not None and reading.unknown:
                raise ClusterUnavailableError(
                    f"job {ko.job_name(deployment_id)} not found in the clusters read; "
                    f"not read: {', '.join(sorted(reading.unknown))}"
                )
        gone = True
        for name in targets:
            cluster = self._writable(name)
            here = await cluster.undeploy(deployment_id, wait_seconds=0)
            await self._forget_gone(name, cluster, deployment_id)
            if not here and wait_seconds > 0:
                here = await self._source.wait_pods_gone(name, deployment_id, wait_seconds)
            self._jobs.get(name, {}).pop(deployment_id, None)
            self._services.get(name, set()).discard(deployment_id)
            gone = gone and here
        return gone

    async def _forget_gone(self, name: str, cluster: KubeCluster, deployment_id: str) -> None:
        """Tell a caching source which of the deployment's Job and Services a live read no
        longer finds (the cache may still hold them). Each read stands alone: a failed one
        forgets nothing of its own kind. A direct source caches nothing, so the reads are
        skipped."""
        if self._source.kind != "monitor":
            return
        gone: list[tuple[str, str]] = []
        with contextlib.suppress(ClusterError):
            try:
                await cluster.get_chute_job(deployment_id)
            except ClusterNotFoundError:
                gone.append(("job", ko.job_name(deployment_id)))
        with contextlib.suppress(ClusterError):
            live = {s.name for s in await cluster.list_chute_services()}
            for service in (ko.service_name(deployment_id), ko.legacy_service_name(deployment_id)):
                if service not in live:
                    gone.append(("service", service))
        if gone:
            await self._source.forget(name, gone)

    async def get_chute_job(self, deployment_id: str) -> ChuteJobView:
        """The Job read live from its cluster. ClusterNotFoundError only when every cluster
        was read and none has it; ClusterUnavailableError when one could not be read."""
        targets, reading = await self._clusters_of(deployment_id)
        for name in targets:
            try:
                return await self._writable(name).get_chute_job(deployment_id)
            except ClusterNotFoundError:
                continue
        job = ko.job_name(deployment_id)
        if reading is not None and reading.unknown:
            unread = ", ".join(sorted(reading.unknown))
            raise ClusterUnavailableError(f"job {job} not found; clusters not read: {unread}")
        raise ClusterNotFoundError(f"job {job} not found in any cluster", 404)

    async def pod_log_tail(self, deployment_id: str, lines: int = 10) -> list[str]:
        for name in [s.cluster for s in where_seen(self._jobs, deployment_id)]:
            found = await self._writable(name).pod_log_tail(deployment_id, lines)
            if found:
                return found
        return []

    async def node_disk(self, name: str) -> NodeDisk:
        """Node `name` is the server of the same name, in its own cluster."""
        return await self._writable(name).node_disk(name)

    # -- delete preflight -----------------------------------------------------------------
    async def delete_preflight(self, deployment_id: str, server_id: str | None) -> str | None:
        """Why the deployment's objects must not be deleted now (None: go ahead). The official
        checks: no server row → allow (orphan); the Job seen in another cluster than the
        server's, or in two → veto; the server's cluster not reachable → veto; the Job's
        cached resourceVersion no longer the live one → veto (the cache is stale). Unlike the
        official check, a Job the read does not have is read live: still there → veto (the
        official one allows it, and a cache that lost a Job gets it deleted).

        A stale read is read again a few times before its veto stands: a monitor cache lags
        the API by its watch, so a Job created or changed a moment ago (a server deleted right
        after a deploy) is not in it yet."""
        server = await self._server_by_id(server_id)
        if server is None:
            return None
        if not self._health:  # a fresh process (`gepetto undeploy`): read the fleet first
            await self.read_fleet()
        else:
            await self._reread(server.name)
        reason, stale = await self._preflight_read(deployment_id, server.name)
        for _ in range(STALE_RECHECKS):
            if not stale:
                break
            await asyncio.sleep(STALE_RECHECK_SECONDS)
            await self._reread(server.name)
            reason, stale = await self._preflight_read(deployment_id, server.name)
        return reason

    async def _preflight_read(self, deployment_id: str, name: str) -> tuple[str | None, bool]:
        """The preflight's veto on the current read of cluster `name`, and whether it is a
        staleness veto (the read behind the live Job), which another read may lift."""
        job = ko.job_name(deployment_id)
        seen = where_seen(self._jobs, deployment_id)
        if len(seen) > 1:
            return f"job {job} is in several clusters: {', '.join(s.cluster for s in seen)}", False
        if seen and seen[0].cluster != name:
            return f"job {job} is in cluster {seen[0].cluster}, not in {name} (its server)", False
        unhealthy = health_reason(self._health.get(name), name)
        if unhealthy is not None:
            return unhealthy, False
        if not seen:
            # Not in the read: only a Job that is really gone may be "deleted". A live one
            # means the read (a monitor cache that lost it) is incomplete: deleting kills it.
            return await self._stale_reason(name, SeenJob(name, job, None), True)
        if seen[0].resource_version is not None:
            return await self._stale_reason(name, seen[0])
        return None, False

    async def _stale_reason(
        self, name: str, seen: SeenJob, unread: bool = False
    ) -> tuple[str | None, bool]:
        """A veto when the Job's live resourceVersion is not the one read, or (`unread`) when
        the read did not have a Job that is live (404: gone, fine); True with a staleness veto."""
        try:
            batch = client.BatchV1Api(self._clients.api(name))
            live = await batch.read_namespaced_job(
                seen.name, self.namespace, _request_timeout=self._timeout
            )
        except ClusterError as e:
            return f"cluster {name}: cannot read job {seen.name}: {e}", False
        except TRANSLATED as e:
            error = translate_error(e, f"read job {seen.name}")
            if isinstance(error, ClusterNotFoundError):
                return None, False
            return f"cluster {name}: {error}", False
        version = live.metadata.resource_version if live.metadata else None
        if unread:
            return f"cluster {name}: job {seen.name} is live but missing from the state read", True
        if version != seen.resource_version:
            return (
                f"cluster {name}: job {seen.name} changed since it was read "
                f"(resourceVersion {seen.resource_version} read, {version} live)"
            ), True
        return None, False

    # -- code config maps -------------------------------------------------------------------
    async def ensure_code_configmap(self, chute: Chute, *, replace: bool = False) -> str:
        """The chute's code ConfigMap in every non-TEE server cluster (a TEE chute mounts no
        code: nothing to do). Every cluster is tried; when some fail, the others keep theirs
        and a ClusterUnavailableError names the failed ones. That is harmless for deploys:
        `deploy_chute` creates the ConfigMap in the server's cluster when it is missing."""
        name = ko.code_configmap_name(chute.chute_id, chute.version)
        if chute.tee:
            return name
        await self._fan_out(
            f"create configmap {name}", lambda c: c.ensure_code_configmap(chute, replace=replace)
        )
        return name

    async def delete_code_configmap(self, chute_id: str, version: str) -> None:
        """Delete it from every non-TEE server cluster (already gone is fine); failures are
        reported as in `ensure_code_configmap`, after every cluster was tried."""
        name = ko.code_configmap_name(chute_id, version)
        await self._fan_out(
            f"delete configmap {name}", lambda c: c.delete_code_configmap(chute_id, version)
        )

    async def _fan_out(self, what: str, op: Callable[[KubeCluster], Awaitable[object]]) -> None:
        """`op` on every non-TEE server cluster with a kubeconfig, `fanout` at a time, each
        bounded by the timeout; raises after all were tried when some failed."""
        servers = await self._refresh_servers()
        targets = [s.name for s in servers if not s.is_tee and s.kubeconfig]
        _, failed = await self._on_each(targets, op, self._timeout * 2)  # replace = two requests
        if failed:
            why = "; ".join(f"{name} ({failed[name]})" for name in targets if name in failed)
            raise ClusterUnavailableError(
                f"{what}: failed in {len(failed)} of {len(targets)} clusters: {why}"
            )

    async def _on_each(
        self, names: Sequence[str], op: Callable[[KubeCluster], Awaitable[T]], seconds: float
    ) -> tuple[dict[str, T], dict[str, str]]:
        """`op` on each named cluster, `fanout` at a time, each within `seconds`: the results,
        and why it failed where it did."""
        gate = asyncio.Semaphore(self._fanout)
        done: dict[str, T] = {}
        failed: dict[str, str] = {}

        async def one(name: str) -> None:
            async with gate:
                try:
                    async with asyncio.timeout(seconds):
                        done[name] = await op(self._writable(name))
                except ClusterError as e:
                    failed[name] = str(e)
                except TimeoutError:
                    failed[name] = "timed out"

        await asyncio.gather(*(one(n) for n in names))
        return done, failed

    # -- lifecycle ----------------------------------------------------------------------------
    async def close(self) -> None:
        if self._round is not None and not self._round.done():
            self._round.cancel()
        await self._source.close()
        await self._clients.close()
