"""The `monitor` state source: server clusters read from the chutes-monitor cache in Redis
(docs/multi-cluster.md), the drop-in beside an official multi-cluster stack.

- `read(names)`: the health hash and the five resource hashes of exactly those clusters, in
  one MULTI/EXEC round trip (never `KEYS`), so the health and the objects are one consistent
  view. What may be believed is decided in adapters/monitor_cache.py; anything else, Redis
  unreachable included, is a `ClusterUnknown` with the reason. No exception escapes.
- A background subscriber (started on first use) on `resources:pod`, `clusters:all` and
  `clusters:all:reconnect`. It survives Redis restarts: redis-py re-subscribes by itself on a
  short outage, and this loop starts over with capped back-off on a long one; every
  (re)subscription is counted (`subscriptions`). It never blocks the event loop.
- `wait_pods_gone` re-checks the cache after every pod event of the deployment and at a short
  interval anyway, so a missed event or a Redis restart cannot make it wait past its limit.

The Redis client belongs to the caller: `close()` stops the subscriber, not the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from gepetto_core.adapters import monitor_cache as mc
from gepetto_core.adapters.cluster_source import (
    ClusterRead,
    ClusterUnknown,
    SourceKind,
)
from gepetto_core.adapters.events_redis import reconnect_delay

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ClusterListener = Callable[[mc.ClusterChange], None]
Reply = list[dict[str, str]] | str  # a cluster's hashes, or the error Redis answered for them
_FAILURES = (RedisError, OSError, TimeoutError)


def utc_now() -> datetime:
    return datetime.now(UTC)


class MonitorSource:
    """`max_data_age`: a cluster whose last heartbeat is older is unknown (the monitor's own
    limit is 2 × 30 s; ours is looser so that a live monitor's verdict comes first, and
    catches a dead monitor that can no longer give one). `recheck_seconds`: how often
    `wait_pods_gone` looks at the cache without an event. `clock`: our "now", compared with
    the heartbeat (which the official monitor takes from the agent's clock)."""

    kind: SourceKind = "monitor"

    def __init__(
        self,
        redis: Redis,
        *,
        namespace: str,
        timeout: float,
        max_data_age: float = 90.0,
        recheck_seconds: float = 1.0,
        poll_seconds: float = 1.0,
        keepalive_seconds: float = 30.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        clock: Clock = utc_now,
    ) -> None:
        self._redis = redis
        self.namespace = namespace
        self.timeout = timeout
        self.max_data_age = max_data_age
        self.recheck_seconds = recheck_seconds
        self._poll = poll_seconds
        self._keepalive = keepalive_seconds
        self._backoff = (backoff_base, backoff_cap)
        self._clock = clock
        self._secrets = (redis.connection_pool.connection_kwargs.get("password"),)
        # (Re)subscriptions so far: the first, then one per reconnect.
        self.subscriptions = 0
        self.messages = 0
        self._subscriber: asyncio.Task[None] | None = None
        self._closed = False
        self._pod_waiters: dict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)
        self._listeners: list[ClusterListener] = []
        self._snapshot_done: dict[str, datetime] = {}
        self._logged: set[tuple[str, str]] = set()

    @property
    def reconnects(self) -> int:
        return max(0, self.subscriptions - 1)

    @property
    def pod_waits(self) -> int:
        """`wait_pods_gone` calls in progress."""
        return sum(len(w) for w in self._pod_waiters.values())

    # -- reading ------------------------------------------------------------------------
    async def read(self, names: Sequence[str]) -> dict[str, ClusterRead]:
        self._ensure_subscriber()
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        try:
            replies = await self._fetch(wanted, mc.RESOURCE_TYPES)
        except _FAILURES as e:
            reason = f"monitor cache unreachable: {self._describe(e)}"
            return {n: ClusterUnknown(n, reason) for n in wanted}
        now = self._clock()
        return {n: self._judge(n, replies[n], now) for n in wanted}

    async def _fetch(
        self, names: Sequence[str], types: Sequence[str], limit: float | None = None
    ) -> dict[str, Reply]:
        """Per cluster: [health, then one hash per type], read atomically (MULTI/EXEC); or the
        error Redis answered for one of its keys (a key of the wrong type, say), which makes
        that cluster unknown and no other."""
        async with asyncio.timeout(self.timeout if limit is None else limit):
            async with self._redis.pipeline(transaction=True) as pipe:
                for name in names:
                    pipe.hgetall(mc.health_key(name))
                    for resource_type in types:
                        pipe.hgetall(mc.resources_key(name, resource_type))
                replies = await pipe.execute(raise_on_error=False)
        width = 1 + len(types)
        found: dict[str, Reply] = {}
        for i, name in enumerate(names):
            chunk = replies[i * width : (i + 1) * width]
            errors = [r for r in chunk if isinstance(r, Exception)]
            if errors:
                found[name] = f"the monitor cache answered an error: {self._describe(errors[0])}"
            else:
                found[name] = [mc.text_mapping(r) for r in chunk]
        return found

    def _judge(self, name: str, reply: Reply, now: datetime) -> ClusterRead:
        if isinstance(reply, str):
            return ClusterUnknown(name, reply)
        health, hashes = reply[0], dict(zip(mc.RESOURCE_TYPES, reply[1:], strict=True))
        verdict = self._verdict(name, health, now)
        if isinstance(verdict, str):
            return ClusterUnknown(name, verdict)
        try:
            snapshot = mc.build_snapshot(name, hashes, self.namespace, verdict)
        except mc.UnreadableObject as e:
            self._log_once(name, f"{e.resource_type}/{e.field}", str(e))
            return ClusterUnknown(name, str(e))
        except (ValueError, TypeError, KeyError, AttributeError) as e:  # valid JSON, odd shape
            self._log_once(name, "shape", f"{type(e).__name__}: {e}")
            return ClusterUnknown(name, f"cached data cannot be read: {type(e).__name__}")
        if not snapshot.nodes:
            # every server cluster has its node; read as "no node", it would mean "server gone"
            return ClusterUnknown(name, mc.NO_NODE)
        return snapshot

    def _verdict(self, name: str, health: Mapping[str, str], now: datetime) -> datetime | str:
        return mc.health_verdict(
            health,
            now,
            max_age=self.max_data_age,
            snapshot_done=self._snapshot_done.get(name),
        )

    def _log_once(self, name: str, what: str, message: str) -> None:
        if (name, what) not in self._logged:
            self._logged.add((name, what))
            log.warning(
                "monitor cache: cluster %s: %s (the cluster reads as unknown)", name, message
            )

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, TimeoutError):
            return f"no answer within {self.timeout:g} s"
        detail = str(error)
        return mc.redact(
            f"{type(error).__name__}: {detail}" if detail else type(error).__name__, self._secrets
        )

    # -- waiting for pods ---------------------------------------------------------------
    async def wait_pods_gone(self, name: str, deployment_id: str, wait_seconds: float) -> bool:
        """True once the cache holds no pod of the deployment on that cluster and the cluster's
        cached data can be believed; False after `wait_seconds` otherwise (the first look may
        take up to `timeout` however short the wait). The waiter is registered before the
        first look, so an event in between is not lost."""
        self._ensure_subscriber()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        wake = asyncio.Event()
        waiters = self._pod_waiters[(name, deployment_id)]
        waiters.add(wake)
        try:
            limit = self.timeout  # the first look may take its full timeout
            while True:
                wake.clear()
                if await self._pods_gone(name, deployment_id, limit):
                    return True
                left = deadline - loop.time()
                if left <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, self.recheck_seconds)):
                        await wake.wait()
                limit = max(0.0, min(self.timeout, deadline - loop.time()))
        finally:
            waiters.discard(wake)
            if not waiters:
                self._pod_waiters.pop((name, deployment_id), None)

    async def _pods_gone(self, name: str, deployment_id: str, limit: float) -> bool:
        try:
            reply = (await self._fetch([name], ("pod",), limit=limit))[name]
        except _FAILURES:
            return False
        if isinstance(reply, str):
            return False
        health, pods = reply
        if isinstance(self._verdict(name, health, self._clock()), str):
            return False
        return not mc.deployment_pods(pods, self.namespace, deployment_id)

    # -- cluster changes ----------------------------------------------------------------
    async def forget(self, name: str, gone: Sequence[tuple[str, str]]) -> None:
        """Drop cached objects a live read found gone, as the official miner does after a 404
        on a delete: a watch event the agent missed would otherwise keep a deleted object in
        the cache, and reconcile would plan its deletion every pass until the next resync."""
        try:
            for resource_type, obj in gone:
                key = mc.resources_key(name, resource_type)
                await self._redis.hdel(key, f"{self.namespace}:{obj}")
        except _FAILURES as e:  # the next resync or watch event fixes the cache anyway
            log.info("cluster %s: could not drop gone objects from the cache: %s", name, e)

    async def clear_cluster(self, name: str) -> None:
        """What the monitor does when an agent unregisters (upstream's handler does it itself
        when the agent cannot): every resource hash and the health hash go, then `clusters:all`
        hears DELETED. A Redis failure is only logged: the monitor's reconciler clears a
        cluster without a server row within a minute anyway."""
        keys = [mc.resources_key(name, t) for t in mc.RESOURCE_TYPES]
        message = {"cluster": name, "event_type": "DELETED", "timestamp": self._clock().isoformat()}
        try:
            await self._redis.delete(*keys, mc.health_key(name))
            await self._redis.publish(mc.CLUSTERS_CHANNEL, json.dumps(message))
        except _FAILURES as e:
            log.warning("cluster %s: could not clear it from the cache: %s", name, e)

    def add_cluster_listener(self, listener: ClusterListener) -> Callable[[], None]:
        """Call `listener` on every cluster ADDED/DELETED/RECONNECT message and after every
        re-subscription (RESUBSCRIBED); returns the function that removes it. A listener runs
        in the subscriber's task: it must be quick and must not block (set an Event)."""
        self._ensure_subscriber()
        self._listeners.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    # -- the subscriber -----------------------------------------------------------------
    def _ensure_subscriber(self) -> None:
        if self._subscriber is None and not self._closed:
            self._subscriber = asyncio.create_task(self._subscribe_forever(), name="monitor-pubsub")

    async def _subscribe_forever(self) -> None:
        failures = 0
        while not self._closed:
            before = self.subscriptions
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the subscriber must outlive anything
                if _cancelling():
                    raise asyncio.CancelledError from e
                failures = 1 if self.subscriptions > before else failures + 1
                delay = reconnect_delay(failures, *self._backoff)
                log.warning(
                    "monitor pub/sub: %s; resubscribing in %.1f s", self._describe(e), delay
                )
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                await pubsub.subscribe(*mc.CHANNELS)
            heard = pinged = loop.time()
            while True:
                # bounded: a reconnect inside redis-py could otherwise hang on a dead host
                async with asyncio.timeout(self._poll + self.timeout):
                    message = await pubsub.get_message(timeout=self._poll)
                now = loop.time()
                if message is not None:
                    heard = now
                    self._on_message(message)
                elif now - heard > self._keepalive + self.timeout:
                    raise RedisConnectionError("no answer from Redis to the subscriber's PING")
                if now - pinged > self._keepalive:
                    pinged = now
                    async with asyncio.timeout(self.timeout):
                        await pubsub.ping()  # its PONG arrives as a message: keep-alive
        finally:
            # bounded too: closing a connection to a Redis that went away must not hang close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    def _on_message(self, message: Mapping[str, Any]) -> None:
        kind, channel = message.get("type"), mc.text(message.get("channel") or "")
        if kind == "subscribe" and channel == mc.CHANNELS[0]:
            # one confirmation per (re)subscription, including redis-py's own re-subscribe
            self.subscriptions += 1
            if self.subscriptions > 1:
                self._wake_all_pod_waiters()
                self._notify(mc.ClusterChange(None, "RESUBSCRIBED"))
            return
        if kind != "message":
            return
        self.messages += 1
        if channel == mc.POD_CHANNEL:
            if self._pod_waiters:  # every pod event of the fleet comes here: parse only if waited
                self._on_pod_message(message["data"])
            return
        change = mc.parse_cluster_message(channel, message["data"])
        if change is None or change.cluster is None:
            log.debug("monitor pub/sub: ignoring a malformed message on %s", channel)
            return
        if change.kind == "DELETED":
            self._snapshot_done.pop(change.cluster, None)
        elif change.at is not None:
            # the snapshot is written before ADDED / reconnect is published: now complete
            self._snapshot_done[change.cluster] = change.at
        self._notify(change)

    def _on_pod_message(self, raw: bytes | str) -> None:
        parsed = mc.parse_pod_message(raw)
        if parsed is None:
            return
        cluster, deployment_id = parsed
        for (waited_cluster, waited_deployment), waiters in self._pod_waiters.items():
            if waited_cluster == cluster and deployment_id in (None, waited_deployment):
                for wake in waiters:
                    wake.set()

    def _wake_all_pod_waiters(self) -> None:
        for waiters in self._pod_waiters.values():
            for wake in waiters:
                wake.set()

    def _notify(self, change: mc.ClusterChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.exception("monitor pub/sub: a cluster listener failed")

    async def close(self) -> None:
        self._closed = True
        task, self._subscriber = self._subscriber, None
        if task is not None:
            task.cancel()
            # Bounded: redis-py can swallow a cancellation that lands inside a pub/sub read and
            # wait on its connection forever; closing must not hang with it. A subscriber still
            # running after the timeout is left to end with its connection (the caller closes
            # the Redis client next).
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
            if not done:
                log.warning(
                    "monitor pub/sub: the subscriber did not stop within %s s", self.timeout
                )
        self._wake_all_pod_waiters()
        self._listeners.clear()


def _cancelling() -> bool:
    """True once the current task was asked to stop (redis-py can turn a cancellation that
    lands inside a request into an ordinary error, which this loop must not swallow)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
