"""Wiring: the adapters and services of one process, each built on first use from only the
settings it needs, and closed again.

This is the only place that constructs adapters (one database pool, one HTTP session, one
Kubernetes client per process). Nothing connects when a `Runtime` is made: `gepetto chutes`
touches the database and the validator and never asks for a kubeconfig, `gepetto pods -h` touches
nothing. `build_runtime` connects everything at once, for the long-running process, so a
misconfiguration stops it at start with a message that names the setting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import datetime
from functools import cached_property
from typing import Any

from gepetto_core.adapters.agent_api import AgentRetirement, HttpAgents
from gepetto_core.adapters.cluster_source import StateSource
from gepetto_core.adapters.database import Database
from gepetto_core.adapters.direct_source import DirectSource
from gepetto_core.adapters.events_redis import RedisEventSource, connect_redis
from gepetto_core.adapters.events_socketio import SocketIoEventSource
from gepetto_core.adapters.host import process_identity
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.adapters.kube_connect import DeferredApiClient, connect_api, kubeconfig_source
from gepetto_core.adapters.kube_fleet import FleetCluster
from gepetto_core.adapters.kube_layout import Layout, LayoutCluster, detect_layout
from gepetto_core.adapters.kube_lease import KubeLease
from gepetto_core.adapters.monitor_source import MonitorSource
from gepetto_core.adapters.pg_history import PgHistory
from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.adapters.pg_state import PgState
from gepetto_core.adapters.server_clusters import ServerClusters
from gepetto_core.adapters.signing import HotkeySigner
from gepetto_core.adapters.validator import HttpValidatorApi, open_http_session
from gepetto_core.clock import utcnow
from gepetto_core.config import Settings
from gepetto_core.errors import ConfigError
from gepetto_core.kube_objects import JobSettings
from gepetto_core.ops.metrics import Metrics
from gepetto_core.services.deployer import Deployer
from gepetto_core.services.event_handlers import EventHandlers, WakeCallback
from gepetto_core.services.leader import LeaderElector, elector_from_settings
from gepetto_core.services.ports import Cluster
from gepetto_core.services.reconcile_service import Reconciler
from gepetto_core.services.sync import SyncService


def job_settings(settings: Settings, miner_ss58: str) -> JobSettings:
    return JobSettings(
        miner_ss58=miner_ss58,
        namespace=settings.chutes_namespace,
        registry_proxy_port=settings.registry_proxy_port,
        mtls_registry_min_version=settings.mtls_registry_min_version,
        runtime_class=settings.nvidia_runtime,
        shutdown_seconds=settings.chute_shutdown_time_seconds,
        cache_max_age_days=settings.cache_max_age_days,
        cache_max_size_gb=settings.cache_max_size_gb,
        cache_overrides=dict(settings.cache_overrides),
    )


class Runtime:
    """Each part is a property built on first use; building one reads only its own settings
    (and raises ConfigError naming the variable when one is missing)."""

    def __init__(
        self,
        settings: Settings,
        *,
        wake: WakeCallback | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self._wake = wake
        self._clock = clock
        self._closers: list[Callable[[], Awaitable[None]]] = []

    # --- adapters ---------------------------------------------------------------------------
    @cached_property
    def pool(self) -> Database:
        dsn = self.settings.postgres_dsn()
        if dsn is None:
            raise ConfigError("POSTGRESQL", "is required")
        database = Database(dsn)
        self._closers.append(database.close)
        return database

    @cached_property
    def inventory(self) -> PgInventory:
        return PgInventory(self.pool)

    @cached_property
    def state(self) -> PgState:
        return PgState(self.pool)

    @cached_property
    def history(self) -> PgHistory:
        return PgHistory(self.pool)

    @cached_property
    def signer(self) -> HotkeySigner:
        miner_ss58, seed = self.settings.require_miner_identity()
        signer = HotkeySigner(seed)
        if signer.hotkey != miner_ss58:
            raise ConfigError("MINER_SEED", "does not belong to MINER_SS58")
        return signer

    @property
    def miner_hotkey(self) -> str:
        return self.signer.hotkey

    @cached_property
    def http(self) -> Any:  # the aiohttp session (the library stays inside the adapters)
        session = open_http_session()
        self._closers.append(session.close)
        return session

    @cached_property
    def validators(self) -> dict[str, HttpValidatorApi]:
        config = self.settings.require_validators()
        signer = self.signer
        return {
            v.hotkey: HttpValidatorApi(self.http, signer, v.api, v.hotkey) for v in config.supported
        }

    @cached_property
    def kube_api(self) -> DeferredApiClient:
        """The control plane's Kubernetes client (KUBECONFIG, or the pod's service account):
        the single layout's one cluster; in the multi layout only layout detection and the
        leader Lease use it. KUBECONFIG is looked up now, the file is read on first use."""
        kubeconfig, in_cluster = kubeconfig_source(self.settings.kubeconfig)
        api = DeferredApiClient(lambda: connect_api(kubeconfig, in_cluster=in_cluster))
        self._closers.append(api.close)
        return api

    @cached_property
    def cluster(self) -> Cluster:
        """The cluster port in the layout GEPETTO_CLUSTER_LAYOUT names; `auto` detects it on
        first use (docs/multi-cluster.md#layout-detection)."""
        layout = self.settings.cluster_layout
        if layout == "auto":
            return LayoutCluster(self._detect_layout, self._cluster_in)
        return self._cluster_in(layout)

    async def _detect_layout(self) -> Layout:
        return await detect_layout(
            self.kube_api, request_timeout=self.settings.cluster_timeout_seconds
        )

    def _cluster_in(self, layout: Layout) -> Cluster:
        return self.kube_cluster if layout == "single" else self.fleet_cluster

    @cached_property
    def job_settings(self) -> JobSettings:
        # Reading the cluster needs no hotkey; every path that creates a Job goes through the
        # deployer, which needs the validator identity (MINER_SS58) first.
        return job_settings(self.settings, self.settings.miner_ss58 or "")

    @cached_property
    def kube_cluster(self) -> KubeCluster:
        """The single layout: every GPU server is a node of the control plane's cluster."""
        return KubeCluster(
            self.kube_api, self.job_settings,
            write_timeout=self.settings.cluster_write_timeout_seconds,
        )  # fmt: skip

    @cached_property
    def fleet_cluster(self) -> FleetCluster:
        """The multi layout: one cluster per GPU server, its client built from
        servers.kubeconfig, its state read from GEPETTO_CLUSTER_SOURCE."""
        s = self.settings
        # Built (and so closed) before the fleet, which closes them too: a second close is a no-op.
        clients, source = self.server_clusters, self.cluster_source
        fleet = FleetCluster(
            clients, source, self.inventory.list_servers, namespace=s.chutes_namespace,
            timeout=s.cluster_timeout_seconds, fanout=s.cluster_fanout,
        )  # fmt: skip
        self._closers.append(fleet.close)
        return fleet

    @cached_property
    def server_clusters(self) -> ServerClusters:
        s = self.settings
        clients = ServerClusters(
            self.job_settings, timeout=s.cluster_timeout_seconds,
            write_timeout=s.cluster_write_timeout_seconds,
        )  # fmt: skip
        self._closers.append(clients.close)
        return clients

    @cached_property
    def cluster_source(self) -> StateSource:
        s = self.settings
        source: StateSource
        if s.cluster_source == "direct":
            source = DirectSource(
                self.server_clusters, namespace=s.chutes_namespace,
                timeout=s.cluster_timeout_seconds, fanout=s.cluster_fanout,
            )  # fmt: skip
        else:
            source = MonitorSource(
                self.monitor_redis, namespace=s.chutes_namespace,
                timeout=s.cluster_timeout_seconds,
            )  # fmt: skip
        self._closers.append(source.close)
        return source

    @cached_property
    def monitor_redis(self) -> Any:  # the chutes-monitor cache's Redis client
        url = self.settings.monitor_redis_url or self.settings.redis_url
        if url is None:
            raise ConfigError(
                "GEPETTO_MONITOR_REDIS_URL",
                "or REDIS_URL is required when GEPETTO_CLUSTER_SOURCE=monitor "
                "(the chutes-monitor cache; GEPETTO_CLUSTER_SOURCE=direct reads each cluster)",
            )
        client = connect_redis(url.get_secret_value())
        self._closers.append(client.aclose)
        return client

    # --- services ---------------------------------------------------------------------------
    @cached_property
    def sync(self) -> SyncService:
        validators = list(self.validators.values())
        return SyncService(validators, interval=self.settings.sync_interval_seconds)

    @cached_property
    def deployer(self) -> Deployer:
        return Deployer(
            self.inventory, self.state, self.cluster, self.validators, clock=self._clock,
            vm_version_of=self.sync.server_vm_version, monitoring=self.server_monitoring,
        )  # fmt: skip

    @cached_property
    def server_monitoring(self) -> AgentRetirement:
        """Stops a deleted server's agent; the state source is built only if that fails."""
        return AgentRetirement(HttpAgents(self.http, self.signer), lambda: self.cluster_source)

    @cached_property
    def reconciler(self) -> Reconciler:
        return Reconciler(
            self.inventory, self.cluster, self.sync, self.deployer, self.validators, self.state,
            clock=self._clock,
        )  # fmt: skip

    @cached_property
    def handlers(self) -> EventHandlers:
        return EventHandlers(
            self.miner_hotkey, self.inventory, self.deployer, self.validators, self.state,
            clock=self._clock, wake=self._wake,
        )  # fmt: skip

    @cached_property
    def redis(self) -> Any:  # the chutes-miner Redis client (for the miner_events relay)
        if self.settings.redis_url is None:
            raise ConfigError("REDIS_URL", "is required when GEPETTO_EVENT_SOURCE=redis")
        client = connect_redis(self.settings.redis_url.get_secret_value())
        self._closers.append(client.aclose)
        return client

    def event_sources(self) -> list[RedisEventSource | SocketIoEventSource]:
        """The configured event intake(s), not yet running."""
        if self.settings.event_source == "redis":
            return [RedisEventSource(self.redis, self.handlers)]
        if self.settings.event_source == "socketio":
            config = self.settings.require_validators()
            return [
                SocketIoEventSource(
                    v.socket or v.api, self.signer, v.hotkey, self.handlers, http_session=self.http
                )
                for v in config.supported
            ]
        return []

    def elector(
        self,
        on_started_leading: Callable[[], Coroutine[Any, Any, None]],
        *,
        metrics: Metrics | None = None,
    ) -> LeaderElector | None:
        """The leader elector GEPETTO_LEADER_ELECTION asks for (None: just run the loops)."""

        def open_lease(namespace: str, name: str) -> KubeLease:
            return KubeLease(self.kube_api, namespace, name)

        return elector_from_settings(
            self.settings, open_lease, process_identity(), on_started_leading, metrics=metrics
        )

    # --- all at once ------------------------------------------------------------------------
    async def connect(self) -> None:
        """Build and connect every part now (the long-running process), failing on the first
        misconfiguration. GEPETTO_CLUSTER_LAYOUT=auto detects the layout here, so a control
        plane that cannot be read stops the process at start with a message naming the
        setting (its supervisor's restart back-off retries)."""
        # In the order the settings are checked: identity, validators, database, cluster.
        for part in ("signer", "validators", "pool", "cluster", "handlers", "reconciler"):
            getattr(self, part)
        await self.pool.open()
        if self._needs_control_plane():
            await self.kube_api.connected()
        if isinstance(self.cluster, LayoutCluster):
            await self.cluster.resolve()

    def _needs_control_plane(self) -> bool:
        """The multi layout reaches the control plane's API only for the leader Lease."""
        return self.settings.cluster_layout != "multi" or self.settings.leader_election

    async def close(self) -> None:
        """Close what was opened, newest first."""
        while self._closers:
            await self._closers.pop()()


async def build_runtime(
    settings: Settings,
    *,
    wake: WakeCallback | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Runtime:
    """A runtime with everything connected. Fails fast, naming the setting, when something is
    misconfigured."""
    rt = Runtime(settings, wake=wake, clock=clock)
    try:
        await rt.connect()
    except BaseException:
        await asyncio.shield(rt.close())
        raise
    return rt


@contextlib.asynccontextmanager
async def runtime(settings: Settings, **kw: Any) -> AsyncIterator[Runtime]:
    """A lazy runtime for one command: only the parts the command touches are built."""
    rt = Runtime(settings, **kw)
    try:
        yield rt
    finally:
        await asyncio.shield(rt.close())
