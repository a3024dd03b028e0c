"""Wiring: build every adapter and service once from Settings, and close them again.

This is the only place that constructs adapters. One asyncpg pool, one aiohttp session and one
Kubernetes ApiClient per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from kubernetes_asyncio import client as kube_client
from redis.asyncio import Redis

from gepetto_core.adapters.events_redis import RedisEventSource
from gepetto_core.adapters.events_socketio import SocketIoEventSource
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.adapters.kube_connect import connect_api
from gepetto_core.adapters.pg import create_pool
from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.adapters.pg_migrations import upgrade
from gepetto_core.adapters.pg_state import PgState
from gepetto_core.adapters.signing import HotkeySigner
from gepetto_core.adapters.validator import HttpValidatorApi
from gepetto_core.clock import utcnow
from gepetto_core.config import Settings
from gepetto_core.errors import ConfigError
from gepetto_core.kube_objects import JobSettings
from gepetto_core.services.deployer import Deployer
from gepetto_core.services.event_handlers import EventHandlers, WakeCallback
from gepetto_core.services.reconcile_service import Reconciler
from gepetto_core.services.sync import SyncService


def job_settings(settings: Settings, miner_ss58: str) -> JobSettings:
    return JobSettings(
        miner_ss58=miner_ss58,
        namespace=settings.chutes_namespace,
        registry_proxy_port=settings.registry_proxy_port,
        runtime_class=settings.nvidia_runtime,
        shutdown_seconds=settings.chute_shutdown_time_seconds,
        cache_max_age_days=settings.cache_max_age_days,
        cache_max_size_gb=settings.cache_max_size_gb,
        cache_overrides=dict(settings.cache_overrides),
    )


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    http: aiohttp.ClientSession
    kube_api: kube_client.ApiClient
    signer: HotkeySigner
    inventory: PgInventory
    state: PgState
    cluster: KubeCluster
    validators: dict[str, HttpValidatorApi]
    sync: SyncService
    deployer: Deployer
    reconciler: Reconciler
    handlers: EventHandlers
    redis: Redis | None = None

    @property
    def miner_hotkey(self) -> str:
        return self.signer.hotkey

    def event_sources(self) -> list[RedisEventSource | SocketIoEventSource]:
        """The configured event intake(s), not yet running."""
        if self.settings.event_source == "redis":
            if self.redis is None:
                raise ConfigError("REDIS_URL", "is required when GEPETTO_EVENT_SOURCE=redis")
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

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        await self.kube_api.close()
        await self.http.close()
        await self.pool.close()


def _kubeconfig_source(settings: Settings) -> tuple[str | None, bool]:
    if settings.kubeconfig:
        return settings.kubeconfig, False
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None, True
    default = Path.home() / ".kube" / "config"
    if default.exists():
        return str(default), False
    raise ConfigError("KUBECONFIG", "is not set, no ~/.kube/config, and not running in a pod")


async def build_runtime(
    settings: Settings,
    *,
    wake: WakeCallback | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Runtime:
    """Connect everything. Fails fast, naming the setting, when something is misconfigured."""
    miner_ss58, seed = settings.require_miner_identity()
    validators_config = settings.require_validators()
    dsn = settings.postgres_dsn()
    if dsn is None:
        raise ConfigError("POSTGRESQL", "is required")
    signer = HotkeySigner(seed)
    if signer.hotkey != miner_ss58:
        raise ConfigError("MINER_SEED", "does not belong to MINER_SS58")
    kubeconfig, in_cluster = _kubeconfig_source(settings)

    async with contextlib.AsyncExitStack() as stack:
        pool = await create_pool(dsn)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await upgrade(conn)
        http = aiohttp.ClientSession()
        stack.push_async_callback(http.close)
        kube_api = await connect_api(kubeconfig, in_cluster=in_cluster)
        stack.push_async_callback(kube_api.close)
        redis = (
            Redis.from_url(settings.redis_url.get_secret_value()) if settings.redis_url else None
        )

        inventory, state = PgInventory(pool), PgState(pool)
        cluster = KubeCluster(kube_api, job_settings(settings, miner_ss58))
        validators = {
            v.hotkey: HttpValidatorApi(http, signer, v.api, v.hotkey)
            for v in validators_config.supported
        }
        sync = SyncService(list(validators.values()), interval=settings.sync_interval_seconds)
        deployer = Deployer(inventory, state, cluster, validators, clock=clock)
        reconciler = Reconciler(inventory, cluster, sync, deployer, validators, clock=clock)
        handlers = EventHandlers(
            miner_ss58, inventory, deployer, cluster, validators, clock=clock, wake=wake
        )
        stack.pop_all()
        return Runtime(
            settings=settings,
            pool=pool,
            http=http,
            kube_api=kube_api,
            signer=signer,
            inventory=inventory,
            state=state,
            cluster=cluster,
            validators=validators,
            sync=sync,
            deployer=deployer,
            reconciler=reconciler,
            handlers=handlers,
            redis=redis,
        )
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def runtime(settings: Settings, **kw: Any) -> AsyncIterator[Runtime]:
    rt = await build_runtime(settings, **kw)
    try:
        yield rt
    finally:
        await asyncio.shield(rt.close())
