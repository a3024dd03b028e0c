"""A chutes-monitor simulator: the sole writer of the Redis resource cache, with the official
monitor's route semantics (register, resync, watch-event patch, heartbeat, unregister), its
HealthChecker and its MonitoringReconciler. Agents call the routes in process (no HTTP between
agent and monitor); each route answers the HTTP status the official one would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gepetto_sandbox.multicluster import cache

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Resources = Mapping[str, list[dict[str, Any]]]  # "pods" → wire-JSON objects, as agents POST them
ServerNames = Callable[[], Awaitable[set[str]]]
StartAgent = Callable[[str], Awaitable[int]]

STALE_AFTER = timedelta(hours=1)
OFFLINE_MESSAGE = "Cluster offline for more than 1 hour."


def utc_now() -> datetime:
    return datetime.now(UTC)


def cancelling() -> bool:
    """True once the current task was asked to stop. redis-py and aiohttp can turn a
    cancellation that lands inside a request into an ordinary error, which a retrying loop
    would then swallow and run forever; such loops check this instead."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class SandboxMonitor:
    """`server_names`: names of `servers` rows with an `agent_api` (None: every cluster is
    known). `start_agent`: what the reconciler's `POST {agent_api}/monitor/start` reaches."""

    def __init__(
        self,
        redis: Redis,
        *,
        clock: Clock = utc_now,
        heartbeat_interval: float = 30.0,
        reconcile_interval: float = 60.0,
        reinitiate_interval: float = 120.0,
        server_names: ServerNames | None = None,
        start_agent: StartAgent | None = None,
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.reconcile_interval = reconcile_interval
        self.reinitiate_interval = reinitiate_interval
        self.server_names = server_names
        self.start_agent = start_agent
        self._reinitiated: dict[str, datetime] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- the cluster routes (`/api/v1/clusters/{cluster}...`) -----------------------------
    async def register(self, cluster: str, resources: Resources) -> int:
        """POST: 404 unless the server exists, 409 when already registered."""
        try:
            if not await self._known(cluster):
                return 404
            if await self.redis.exists(cache.health_key(cluster)):
                return 409
            now = self.clock()
            await self._write_health(cluster, "starting", cache.timestamp(now))
            await self._set_resources(cluster, resources)
            added = cache.cluster_message(cluster, "ADDED", now)
            await self._publish(cache.CLUSTERS_CHANNEL, added)
        except RedisError as e:
            log.warning("monitor: registering %s failed: %s", cluster, e)
            return 500
        return 200

    async def unregister(self, cluster: str) -> int:
        """DELETE: `clear_cluster`, nodes included, then `clusters:all` DELETED."""
        try:
            await self.clear_cluster(cluster)
        except RedisError as e:
            log.warning("monitor: clearing %s failed: %s", cluster, e)
            return 500
        return 200

    async def resync(self, cluster: str, resources: Resources) -> int:
        """PUT …/resources: 404 unless the server exists, 410 when not registered."""
        try:
            if not await self._known(cluster):
                return 404
            if not await self.redis.exists(cache.health_key(cluster)):
                return 410
            now = self.clock()
            await self._write_health(cluster, "starting", cache.timestamp(now))
            await self._set_resources(cluster, resources)
            await self._publish(cache.RECONNECT_CHANNEL, cache.reconnect_message(cluster, now))
        except RedisError as e:
            log.warning("monitor: resync of %s failed: %s", cluster, e)
            return 500
        return 200

    async def patch(self, cluster: str, event: Mapping[str, Any]) -> int:
        """PATCH …/resources: one watch event. DELETED → HDEL, anything else → HSET; then the
        same message on four channels. Neither the DB nor the registration is checked."""
        obj = event["object"]
        resource_type = cache.TYPE_BY_KIND.get(obj.get("kind", ""), "unknown")
        key = cache.resources_key(cluster, resource_type)
        try:
            if event["type"] == "DELETED":
                await self.redis.hdel(key, cache.field_name(obj))
            else:
                await self.redis.hset(key, cache.field_name(obj), cache.value(obj))
        except RedisError as e:
            log.warning("monitor: event for %s failed: %s", cluster, e)
            return 500
        message = cache.resource_message(cluster, event["type"], obj, self.clock())
        for channel in cache.resource_channels(cluster, resource_type):
            await self._publish(channel, message)
        return 200

    async def heartbeat(self, cluster: str, body: Mapping[str, Any]) -> int:
        """PUT …/health: 404 when not registered, 409 when not healthy; `last_heartbeat` is
        the agent's own timestamp."""
        try:
            current = await self._health(cache.health_key(cluster))
            if not current:
                return 404
            if current.get("state") not in cache.HEALTHY_STATES:
                return 409
            await self._write_health(cluster, str(body["state"]), str(body["timestamp"]))
        except RedisError as e:
            log.warning("monitor: heartbeat of %s failed: %s", cluster, e)
            return 500
        return 200

    # -- cache writes ---------------------------------------------------------------------
    async def clear_cluster(self, cluster: str) -> None:
        keys = [cache.resources_key(cluster, t) for t in cache.RESOURCE_TYPES]
        await self.redis.delete(*keys)
        await self.redis.delete(cache.health_key(cluster))
        await self._publish(
            cache.CLUSTERS_CHANNEL, cache.cluster_message(cluster, "DELETED", self.clock())
        )

    async def _set_resources(self, cluster: str, resources: Resources) -> None:
        # Not atomic, on purpose: readers can see the cluster between the DEL and the HSETs,
        # as they can with the official monitor. Node hashes are only overwritten field by
        # field, never cleared, so a node never vanishes during a resync.
        await self.redis.delete(*(cache.resources_key(cluster, t) for t in cache.NON_NODE_TYPES))
        for resource_type in cache.RESOURCE_TYPES:
            items = resources.get(f"{resource_type}s") or []
            if items:
                mapping: dict[Any, Any] = {cache.field_name(o): cache.value(o) for o in items}
                await self.redis.hset(cache.resources_key(cluster, resource_type), mapping=mapping)

    async def _write_health(
        self, cluster: str, state: str, last_heartbeat: str, error_message: str = ""
    ) -> None:
        mapping: dict[Any, Any] = cache.health_mapping(
            cluster, state, last_heartbeat, error_message
        )
        await self.redis.hset(cache.health_key(cluster), mapping=mapping)

    async def _publish(self, channel: str, message: str) -> None:
        # A failed publish does not fail the write, as in the official monitor.
        try:
            await self.redis.publish(channel, message)
        except RedisError as e:
            log.warning("monitor: publish on %s failed: %s", channel, e)

    async def _known(self, cluster: str) -> bool:
        return self.server_names is None or cluster in await self.server_names()

    async def _health_keys(self) -> list[str]:
        return [_text(k) async for k in self.redis.scan_iter(match="clusters:*:health", count=1000)]

    async def _health(self, key: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in (await self.redis.hgetall(key)).items()}

    # -- HealthChecker --------------------------------------------------------------------
    async def check_health_once(self) -> list[str]:
        """One HealthChecker cycle; returns the clusters it marked unhealthy or error."""
        changed = []
        now = self.clock()
        timeout = timedelta(seconds=self.heartbeat_interval * 2)
        for key in await self._health_keys():
            health = await self._health(key)
            if not health:
                continue
            cluster = health.get("cluster_name") or cache.cluster_of_health_key(key)
            beat = _parse(health.get("last_heartbeat", ""))
            reason = ""
            if not health.get("last_heartbeat"):
                reason = "No heartbeat timestamp"
            elif beat is None:
                reason = "Unable to determine last heartbeat time"
            elif now - beat > timeout:
                reason = f"Cluster {cluster} heartbeat is stale: {beat} (timeout: {timeout})"
            state = health.get("state")
            if reason and state in cache.HEALTHY_STATES:
                await self._write_health(
                    cluster, "unhealthy", health.get("last_heartbeat", ""), reason
                )
                state = "unhealthy"
                changed.append(cluster)
            if beat is not None and now - beat > STALE_AFTER and state != "error":
                await self._write_health(
                    cluster, "error", health.get("last_heartbeat", ""), OFFLINE_MESSAGE
                )
                if cluster not in changed:
                    changed.append(cluster)
        return changed

    # -- MonitoringReconciler -------------------------------------------------------------
    async def reconcile_once(self) -> None:
        """Clear clusters with no server row; ask the agents of missing, unhealthy or error
        clusters to start (at most once per `reinitiate_interval` each)."""
        if self.server_names is None:
            return
        expected = await self.server_names()
        for key in await self._health_keys():
            cluster = cache.cluster_of_health_key(key)
            if cluster not in expected:
                await self.clear_cluster(cluster)
        if self.start_agent is None:
            return
        now = self.clock()
        for cluster in sorted(expected):
            state = await self.redis.hget(cache.health_key(cluster), "state")
            if state not in (None, "unhealthy", "error"):
                continue
            last = self._reinitiated.get(cluster)
            if last is not None and now - last < timedelta(seconds=self.reinitiate_interval):
                continue
            self._reinitiated[cluster] = now
            code = await self.start_agent(cluster)
            log.info("monitor: reinitiated the agent of %s: %s", cluster, code)

    # -- loops ----------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(
                self._every(self.heartbeat_interval, self.check_health_once, first=True),
                name="monitor-health",
            ),
            asyncio.create_task(
                self._every(self.reconcile_interval, self.reconcile_once, first=False),
                name="monitor-reconciler",
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _every(
        self, seconds: float, step: Callable[[], Awaitable[Any]], *, first: bool
    ) -> None:
        if not first:
            await asyncio.sleep(seconds)
        while not cancelling():
            try:
                await step()
            except Exception as e:  # the official loops log and carry on
                if cancelling():
                    break
                log.warning("monitor: %s failed: %s", getattr(step, "__name__", step), e)
            if cancelling():  # a cancellation a step swallowed: do not sleep a whole interval
                break
            await asyncio.sleep(seconds)

    # -- faults and helpers for tests ------------------------------------------------------
    async def mark_unhealthy(self, cluster: str, reason: str) -> None:
        """What the official operator writes to force a resync (other fields kept)."""
        mapping: dict[Any, Any] = {"state": "unhealthy", "error_message": reason}
        await self.redis.hset(cache.health_key(cluster), mapping=mapping)

    async def drop_cached(
        self, cluster: str, resource_type: str, namespace: str | None, name: str
    ) -> bool:
        """The cache loses one object without any event (e.g. a missed watch event)."""
        removed = await self.redis.hdel(
            cache.resources_key(cluster, resource_type), f"{namespace}:{name}"
        )
        return bool(removed)

    async def cached(
        self, cluster: str, resource_type: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        raw = await self.redis.hget(
            cache.resources_key(cluster, resource_type), f"{namespace}:{name}"
        )
        if raw is None:
            return None
        found: dict[str, Any] = json.loads(raw)
        return found

    async def serve_stale(
        self,
        cluster: str,
        resource_type: str,
        namespace: str | None,
        name: str,
        resource_version: str = "1",
    ) -> None:
        """The cached copy keeps an older resourceVersion than the live object."""
        obj = await self.cached(cluster, resource_type, namespace, name)
        if obj is None:
            raise KeyError(f"{resource_type} {namespace}:{name} is not cached for {cluster}")
        obj["metadata"]["resourceVersion"] = resource_version
        await self.redis.hset(
            cache.resources_key(cluster, resource_type), cache.field_name(obj), cache.value(obj)
        )


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _parse(stamp: str) -> datetime | None:
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
