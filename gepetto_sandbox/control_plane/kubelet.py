"""A fake kubelet for the real control plane: it registers the fleet's Nodes (the miner's
labels, `nvidia.com/gpu` capacity, Ready), plays every pod bound to them through
Pending → Running → Ready, or through a scripted failure (an image that never pulls, a container
that exits with a code), finishes graceful deletions, and serves container logs to the API
server over TLS as a kubelet does (`kubectl logs`, `read_namespaced_pod_log`).

It writes only what a kubelet writes: Node and Pod status through the status subresources, and
the final deletion of a terminating pod. Scheduling, Job status, garbage collection and
everything else are the real controllers' work. Faults use the sandbox's `PodFault`, keyed the
same way (deployment id, chute id or job name label), so one test can script both backends."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from gepetto_sandbox.cluster.controllers import CHUTE_KEY_LABELS
from gepetto_sandbox.cluster.fleet import FleetNode, node_conditions
from gepetto_sandbox.cluster.pod_status import condition, container_statuses
from gepetto_sandbox.cluster.script import PodFault, PodTimings
from gepetto_sandbox.cluster.store import now_iso

Obj = dict[str, Any]
MERGE = "application/merge-patch+json"


def _conditions(scheduled: bool, initialized: bool, ready: bool, reason: str | None) -> list[Obj]:
    return [
        condition("PodScheduled", scheduled),
        condition("Initialized", initialized, None if initialized else "ContainersNotInitialized"),
        condition("ContainersReady", ready, reason),
        condition("Ready", ready, reason),
    ]


class FakeKubelet:
    """Kubelets for every node of `fleet`, through one admin ApiClient."""

    def __init__(
        self,
        api: client.ApiClient,
        fleet: Iterable[FleetNode],
        *,
        pki_dir: Path,
        timings: PodTimings | None = None,
    ) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._wanted = list(fleet)
        self._pki_dir = pki_dir
        self.timings = timings or PodTimings()
        self.faults: dict[str, PodFault] = {}
        self.fleet: list[FleetNode] = []
        self.logs: dict[tuple[str, str], list[str]] = {}
        self._nodes: set[str] = set()
        self._seen: set[str] = set()
        self._deleting: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._deletions_open = asyncio.Event()
        self._deletions_open.set()
        self._port = 0
        self._ip = 1

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self._serve_logs()
        for node in self._wanted:
            self.fleet.append(await self.register(node))
        self._spawn(self._watch_pods())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- nodes --------------------------------------------------------------------------
    async def register(self, node: FleetNode) -> FleetNode:
        """Create the Node (or take over an existing one); returns the node with the uid the
        API server gave it."""
        obj = node.to_object()
        obj["metadata"].pop("uid", None)
        status = self._node_status(obj["status"])
        obj.pop("status")
        try:
            create: Any = self._core.create_node
            created = await create(obj)
        except ApiException as e:
            if e.status != 409:
                raise
            created = await self._core.read_node(node.name)
        await self._patch_node_status(node.name, status)
        self._nodes.add(node.name)
        return dataclasses.replace(node, uid=created.metadata.uid)

    async def _patch_node_status(self, name: str, status: Obj) -> None:
        # A JSON merge patch replaces lists whole (a strategic one would merge the conditions).
        patch: Any = self._core.patch_node_status
        await patch(name, {"status": status}, _content_type=MERGE)

    def _node_status(self, status: Obj) -> Obj:
        # The API server reaches this kubelet (for logs) at the InternalIP and kubelet port.
        status["addresses"] = [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": "localhost"},
        ]
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": self._port}}
        return status

    async def unregister(self, name: str) -> None:
        """Delete the Node; its pods are no longer played."""
        self._nodes.discard(name)
        with contextlib.suppress(ApiException):
            await self._core.delete_node(name)

    async def set_node_ready(self, name: str, ready: bool) -> None:
        status = {"conditions": node_conditions(ready)}
        await self._patch_node_status(name, status)

    def script_fault(self, key: str, fault: PodFault) -> None:
        self.faults[key] = fault

    def hold_deletions(self) -> None:
        """Terminating pods stay (as with a slow container shutdown) until `release_deletions`:
        a test can then be sure a client sees them go rather than finding them gone."""
        self._deletions_open.clear()

    def release_deletions(self) -> None:
        self._deletions_open.set()

    # -- pods ---------------------------------------------------------------------------
    async def _watch_pods(self) -> None:
        while True:
            listed = await self._core.list_pod_for_all_namespaces()
            for pod in listed.items:
                self._on_pod(self._api.sanitize_for_serialization(pod))
            stream = watch.Watch()
            try:
                async for event in stream.stream(
                    self._core.list_pod_for_all_namespaces,
                    resource_version=listed.metadata.resource_version,
                    allow_watch_bookmarks=True,
                ):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._on_pod(event["raw_object"])
            except ApiException as e:
                if e.status != 410:
                    raise
            finally:
                await stream.close()

    def _on_pod(self, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if spec.get("nodeName") not in self._nodes:
            return
        uid = meta["uid"]
        if meta.get("deletionTimestamp"):
            if uid not in self._deleting:
                self._deleting.add(uid)
                self._spawn(self._finish_deletion(pod))
        elif uid not in self._seen and (pod.get("status") or {}).get("phase") == "Pending":
            self._seen.add(uid)
            self._spawn(self._lifecycle(pod))

    def fault_for(self, pod: Obj) -> PodFault | None:
        labels = pod["metadata"].get("labels") or {}
        for key in CHUTE_KEY_LABELS:
            if labels.get(key) in self.faults:
                return self.faults[labels[key]]
        return None

    def _log(self, pod: Obj, line: str) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.logs.setdefault(key, []).append(f"{now_iso()} {line}")

    async def _patch_status(self, pod: Obj, status: Obj) -> bool:
        """False once the pod is gone or terminating (the kubelet stops playing it)."""
        meta = pod["metadata"]
        if meta["uid"] in self._deleting:
            return False
        try:
            patch: Any = self._core.patch_namespaced_pod_status
            await patch(meta["name"], meta["namespace"], {"status": status}, _content_type=MERGE)
        except ApiException as e:
            if e.status in (404, 409):
                return False
            raise
        return True

    async def _lifecycle(self, pod: Obj) -> None:
        fault = self.fault_for(pod)
        self._ip += 1
        pod_ip = f"10.42.{self._ip // 250}.{self._ip % 250 + 1}"
        first_image = (pod["spec"].get("containers") or [{}])[0].get("image", "")
        pending: Obj = {
            "phase": "Pending",
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": now_iso(),
            "conditions": _conditions(True, False, False, "ContainersNotReady"),
            "containerStatuses": container_statuses(
                pod, {"waiting": {"reason": "ContainerCreating"}}, False
            ),
        }
        if not await self._patch_status(pod, pending):
            return
        self._log(pod, f"pulling image {first_image}")
        await asyncio.sleep(self.timings.start_seconds)
        if fault is not None and fault.kind == "image_pull":
            self._log(pod, "failed to pull image: not found")
            message = f'Back-off pulling image "{first_image}"'
            for reason in ("ErrImagePull", "ImagePullBackOff"):
                waiting = {"waiting": {"reason": reason, "message": message}}
                if not await self._patch_status(
                    pod, {"containerStatuses": container_statuses(pod, waiting, False)}
                ):
                    return
                await asyncio.sleep(self.timings.start_seconds)
            return
        started = now_iso()
        running = {"running": {"startedAt": started}}
        if not await self._patch_status(
            pod,
            {
                "phase": "Running",
                "conditions": _conditions(True, True, False, "ContainersNotReady"),
                "containerStatuses": container_statuses(pod, running, False),
            },
        ):
            return
        self._log(pod, "container started")
        if fault is None or fault.after_seconds > 0:
            await asyncio.sleep(self.timings.ready_seconds)
            if not await self._patch_status(
                pod,
                {
                    "conditions": _conditions(True, True, True, None),
                    "containerStatuses": container_statuses(pod, running, True),
                },
            ):
                return
            self._log(pod, "readiness probe succeeded")
        if fault is not None and fault.kind == "crash":
            await asyncio.sleep(max(0.0, fault.after_seconds - self.timings.ready_seconds))
            await self._crash(pod, started, fault.exit_code)

    async def _crash(self, pod: Obj, started: str, exit_code: int) -> None:
        terminated = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": started,
                "finishedAt": now_iso(),
            }
        }
        policy = pod["spec"].get("restartPolicy", "Always")
        status: Obj = {"conditions": _conditions(True, True, False, "PodCompleted")}
        if policy == "Always" or (policy == "OnFailure" and exit_code != 0):
            statuses = container_statuses(
                pod, {"waiting": {"reason": "CrashLoopBackOff"}}, False, 1
            )
            for entry in statuses:
                entry["lastState"] = terminated
            status["containerStatuses"] = statuses
        else:
            status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            status["containerStatuses"] = container_statuses(pod, terminated, False)
        if await self._patch_status(pod, status):
            self._log(pod, f"container exited with code {exit_code}")

    async def _finish_deletion(self, pod: Obj) -> None:
        meta = pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        delay = self.timings.termination_seconds
        if grace is not None:
            delay = min(delay, float(grace))
        await asyncio.sleep(delay)
        await self._deletions_open.wait()
        body = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
        )
        with contextlib.suppress(ApiException):
            await self._core.delete_namespaced_pod(meta["name"], meta["namespace"], body=body)
        self.logs.pop((meta["namespace"], meta["name"]), None)

    # -- the kubelet's log endpoint -----------------------------------------------------
    async def _serve_logs(self) -> None:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._container_log)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._pki_dir / "kubelet.crt", self._pki_dir / "kubelet.key")
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def _container_log(self, request: web.Request) -> web.Response:
        key = (request.match_info["namespace"], request.match_info["pod"])
        if key not in self.logs:
            raise web.HTTPNotFound(text=f"pod {key[0]}/{key[1]} is not on this kubelet")
        lines = self.logs[key]
        tail = request.query.get("tailLines")
        if tail is not None:
            lines = lines[-int(tail) :] if int(tail) > 0 else []
        return web.Response(text="".join(f"{line}\n" for line in lines))
