"""A chutes-agent simulator: one per member cluster. It reads its cluster over real HTTP with
kubernetes-asyncio under its own service-account token (as the on-node agent does), takes a
snapshot (all nodes; deployments, pods, services and jobs of the watched namespaces), registers
it with the monitor, then forwards every watch event and heartbeats. Its failure handling
follows the official agent: restart on a failed heartbeat or exhausted watch retries (stop,
resync, restart), 410 Gone re-lists for a resourceVersion only, and a DELETED object that is
still readable is reported TERMINATING until it is gone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from gepetto_core.adapters.kube_connect import connect_api
from gepetto_sandbox.multicluster import cache
from gepetto_sandbox.multicluster.monitor import Clock, SandboxMonitor, cancelling, utc_now

log = logging.getLogger(__name__)

Lister = Callable[..., Awaitable[Any]]


class _Watch(watch.Watch):
    """kubernetes-asyncio's Watch on the agent's own ApiClient. The stock Watch builds (and
    closes) an ApiClient of its own per stream, and each costs a fresh SSL context loaded with
    the system CA bundle: ~85 ms of CPU and megabytes, for nothing but deserialising."""

    def __init__(self, api: client.ApiClient) -> None:
        self._raw_return_type = None
        self._stop = False
        self._api_client = api
        self.resource_version = None
        self.resp = None

    async def close(self) -> None:
        if self.resp is not None:
            self.resp.close()  # drop the connection: an abandoned stream is never read to EOF
            self.resp = None


@dataclass(frozen=True)
class AgentTimings:
    """Every wait of the agent, so tests need not wait the official values (in brackets)."""

    heartbeat_interval: float = 30.0  # [30 s]
    watch_timeout: int = 300  # server-side watch timeout [300 s]
    list_attempts: int = 5  # watcher tries before the agent restarts [5]
    retry_delay: float = 1.0  # between watcher tries
    restart_attempts: int = 10  # [10]
    backoff_base: float = 5.0  # restart backoff, doubling [5 s]
    backoff_cap: float = 300.0  # [300 s]
    deletion_poll: float = 2.0  # re-read of a DELETED-but-readable object [2 s]
    request_timeout: float = 10.0  # per list/read request


class SandboxAgent:
    def __init__(
        self,
        name: str,
        kubeconfig: dict[str, Any],
        monitor: SandboxMonitor,
        *,
        namespaces: tuple[str, ...] = ("chutes",),
        timings: AgentTimings | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.name = name
        self.monitor = monitor
        self.namespaces = namespaces
        self.timings = timings or AgentTimings()
        self.clock = clock
        self.state = "stopped"  # stopped | starting | running | degraded | error
        self.error_message: str | None = None
        self.has_control_plane = False  # the persisted control-plane URL
        self._kubeconfig = kubeconfig
        self._api: client.ApiClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._restart: asyncio.Task[None] | None = None
        self._listed: dict[str, asyncio.Event] = {}
        self._generation = 0  # bumped on every (re)start: older watchers must not forward
        self.events_forwarded = 0

    # -- the agent's routes ---------------------------------------------------------------
    async def start(self, register: bool = True) -> int:
        """`POST /monitor/start` (register=True) or the auto-start after a pod restart."""
        if self.state in ("starting", "running") or self._restart is not None:
            return 409
        self.has_control_plane = True
        self.state = "starting"
        code = await self._sync(register)
        if code == 404:  # the server is not in the miner's database
            self.has_control_plane = False
            self.state = "stopped"
            return 404
        if code != 200:
            self.state = "degraded"
            self._spawn_restart()
            return 500
        self._start_tasks()
        self.state = "running"
        return 200

    async def stop(self) -> int:
        """`GET /monitor/stop`: stop, unregister at the monitor, forget the control plane."""
        if not self.has_control_plane:
            return 409
        await self._halt()
        await self.monitor.unregister(self.name)
        self.has_control_plane = False
        self.state = "stopped"
        return 200

    async def kill(self) -> None:
        """The agent dies with its server: no goodbye, no heartbeat, state kept at the monitor."""
        await self._halt()
        self.state = "stopped"

    async def close(self) -> None:
        await self._halt()
        if self._api is not None:
            await self._api.close()
            self._api = None

    # -- snapshot and registration --------------------------------------------------------
    async def _client(self) -> client.ApiClient:
        if self._api is None:
            self._api = await connect_api(self._kubeconfig, context=self.name)
        return self._api

    def _listers(self) -> list[tuple[str, str | None, Lister, Lister]]:
        """(type, namespace, list function, read function) for every watched collection."""
        assert self._api is not None
        core, apps, batch = (
            client.CoreV1Api(self._api),
            client.AppsV1Api(self._api),
            client.BatchV1Api(self._api),
        )
        found: list[tuple[str, str | None, Lister, Lister]] = [
            ("node", None, core.list_node, core.read_node)
        ]
        deployments = (apps.list_namespaced_deployment, apps.read_namespaced_deployment)
        for ns in self.namespaces:
            found += [
                ("deployment", ns, *deployments),
                ("pod", ns, core.list_namespaced_pod, core.read_namespaced_pod),
                ("service", ns, core.list_namespaced_service, core.read_namespaced_service),
                ("job", ns, batch.list_namespaced_job, batch.read_namespaced_job),
            ]
        return found

    async def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """What the agent POSTs: list items as the API returns them, which carry no kind or
        apiVersion (the sandbox's list items do; they are dropped here, as a real apiserver
        never sends them)."""
        api = await self._client()
        resources: dict[str, list[dict[str, Any]]] = {f"{t}s": [] for t in cache.RESOURCE_TYPES}
        timeout = self.timings.request_timeout
        for resource_type, ns, lister, _ in self._listers():
            args = (ns,) if ns is not None else ()
            listed = await lister(*args, _request_timeout=timeout)
            for item in listed.items:
                item.kind = None
                item.api_version = None
                resources[f"{resource_type}s"].append(api.sanitize_for_serialization(item))
        return resources

    async def _sync(self, register: bool) -> int:
        try:
            resources = await self.snapshot()
        except Exception as e:  # the cluster's API is down, hung or refusing us
            self.error_message = f"snapshot failed: {e!r}"
            return 503
        if register:
            code = await self.monitor.register(self.name, resources)
            if code == 409:
                await self.monitor.unregister(self.name)
                code = await self.monitor.register(self.name, resources)
        else:
            code = await self.monitor.resync(self.name, resources)
            if code == 410:
                code = await self.monitor.register(self.name, resources)
        return code

    # -- tasks ----------------------------------------------------------------------------
    def _start_tasks(self) -> None:
        self._generation += 1
        self._spawn(self._heartbeats(), "heartbeat")
        listers = self._listers()
        self._listed = {f"{t}/{ns}": asyncio.Event() for t, ns, _, _ in listers}
        for resource_type, ns, lister, reader in listers:
            self._spawn(self._watch(resource_type, ns, lister, reader), f"watch-{resource_type}")

    async def watching(self) -> None:
        """Wait until every watcher has its resourceVersion: from then on no change is missed
        (the official agent has a gap between its snapshot and its watchers' first list; a
        change inside it reaches the cache only with the next resync)."""
        await asyncio.gather(*(e.wait() for e in self._listed.values()))

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.create_task(coro, name=f"agent-{self.name}-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _halt(self) -> None:
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current]
        if self._restart is not None and self._restart is not current:
            pending.append(self._restart)
            self._restart = None
        for task in pending:
            task.cancel()
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=5.0)
            for task in stuck:  # never seen to happen; logged rather than hanging a shutdown
                log.warning("agent %s: task %s ignored its cancellation", self.name, task)
        self._tasks.clear()

    # -- heartbeat ------------------------------------------------------------------------
    async def _heartbeats(self) -> None:
        while not cancelling():
            await asyncio.sleep(self.timings.heartbeat_interval)
            await self.heartbeat_once()

    async def heartbeat_once(self) -> int:
        """`PUT /api/v1/clusters/{name}/health` with the agent's clock; a failure restarts.
        Only a running agent heartbeats: otherwise nothing is sent and the answer is 0."""
        if self.state != "running":
            return 0
        body = {"state": "active", "timestamp": cache.timestamp(self.clock())}
        code = await self.monitor.heartbeat(self.name, body)
        if code != 200 and self.state == "running":
            self.error_message = f"heartbeat answered {code}"
            self._spawn_restart()
        return code

    # -- restart --------------------------------------------------------------------------
    def _spawn_restart(self) -> None:
        if self._restart is None:
            self._restart = asyncio.create_task(self._restart_loop(), name=f"agent-{self.name}")

    async def _restart_loop(self) -> None:
        try:
            await self._halt()
            self.state = "degraded"
            delay = self.timings.backoff_base
            for _ in range(self.timings.restart_attempts):
                if cancelling():
                    return
                if await self._sync(register=False) == 200:
                    self._start_tasks()
                    self.state = "running"
                    self.error_message = None
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.timings.backoff_cap)
            self.state = "error"  # the liveness probe would now restart the pod
        finally:
            if self._restart is asyncio.current_task():
                self._restart = None

    # -- watchers -------------------------------------------------------------------------
    async def _watch(
        self, resource_type: str, ns: str | None, lister: Lister, reader: Lister
    ) -> None:
        args = (ns,) if ns is not None else ()
        timeout = self.timings.request_timeout
        resource_version: str | None = None
        failures = 0
        generation = self._generation
        while generation == self._generation:
            try:
                if resource_version is None:
                    listed = await lister(*args, _request_timeout=timeout)
                    resource_version = listed.metadata.resource_version
                    self._listed[f"{resource_type}/{ns}"].set()
                assert self._api is not None
                stream = _Watch(self._api).stream(
                    lister,
                    *args,
                    resource_version=resource_version,
                    timeout_seconds=self.timings.watch_timeout,
                )
                async with stream:
                    async for event in stream:
                        if generation != self._generation or cancelling():
                            return
                        failures = 0
                        obj = event["object"]
                        resource_version = obj.metadata.resource_version
                        await self._forward(resource_type, ns, event["type"], obj, reader)
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if cancelling():
                    raise asyncio.CancelledError from e
                if e.status == 410:
                    # Only a fresh resourceVersion: changes in between are lost until the next
                    # resync, as with the official agent.
                    resource_version = None
                    continue
                failures += 1
            except Exception as e:
                if cancelling():  # a library turned our cancellation into an error
                    raise asyncio.CancelledError from e
                log.debug("agent %s: %s watch failed: %r", self.name, resource_type, e)
                failures += 1
            if failures >= self.timings.list_attempts:
                log.info("agent %s: %s watch gave up; restarting", self.name, resource_type)
                self._spawn_restart()
                return
            if failures:
                await asyncio.sleep(self.timings.retry_delay)

    async def _forward(
        self, resource_type: str, ns: str | None, kind: str, obj: Any, reader: Lister
    ) -> None:
        assert self._api is not None
        wire = self._api.sanitize_for_serialization(obj)
        if kind == "DELETED" and await self._readable(reader, ns, obj.metadata.name):
            await self._send("TERMINATING", wire)
            self._spawn(self._await_gone(reader, ns, wire), f"gone-{obj.metadata.name}")
            return
        await self._send(kind, wire)

    async def _await_gone(self, reader: Lister, ns: str | None, wire: dict[str, Any]) -> None:
        name = wire["metadata"]["name"]
        while not cancelling():  # the official agent polls: there is no event for "now really gone"
            if not await self._readable(reader, ns, name):
                break
            await asyncio.sleep(self.timings.deletion_poll)
        else:
            return  # stopped while the object was still there
        await self._send("DELETED", wire)

    async def _readable(self, reader: Lister, ns: str | None, name: str) -> bool:
        args = (name, ns) if ns is not None else (name,)
        try:
            await reader(*args, _request_timeout=self.timings.request_timeout)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    async def _send(self, kind: str, wire: dict[str, Any]) -> None:
        code = await self.monitor.patch(self.name, {"type": kind, "object": wire})
        self.events_forwarded += 1
        if code != 200:
            log.info("agent %s: monitor refused an event: %s", self.name, code)
