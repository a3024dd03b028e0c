"""Tiny stand-ins for the kube-controller-manager and kubelets: a Job makes a Pod on its
`nodeName`, pods go Pending → Running → Ready after configurable delays, Job status counts
follow the pods, deletion honours grace periods and propagation policies, and scripted faults
(image pull failure, crash with an exit code, node NotReady) play out on cue."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
from collections.abc import Callable, Coroutine
from typing import Any

from gepetto_sandbox.cluster.admission import Admission
from gepetto_sandbox.cluster.pod_status import (
    condition,
    first_image,
    internal_ip,
    node_is_ready,
    pod_ready,
    running_setter,
    set_pending,
    set_running,
    set_terminated,
    set_waiting,
)
from gepetto_sandbox.cluster.resources import BY_PATH, ResourceType
from gepetto_sandbox.cluster.script import PodFault, PodTimings
from gepetto_sandbox.cluster.store import Event, Obj, StatusError, Store, now_iso

PODS = BY_PATH[("", "v1", "pods")]
JOBS = BY_PATH[("batch", "v1", "jobs")]
NODES = BY_PATH[("", "v1", "nodes")]
NAMESPACES = BY_PATH[("", "v1", "namespaces")]

CHUTE_KEY_LABELS = ("chutes/deployment-id", "chutes/chute-id", "job-name")


class Controllers:
    def __init__(self, store: Store, admission: Admission, timings: PodTimings, seed: int) -> None:
        self.store = store
        self.admission = admission
        self.timings = timings
        self.faults: dict[str, PodFault] = {}
        self.logs: dict[str, list[str]] = {}
        self._rng = random.Random(seed)
        self._tasks: set[asyncio.Task[None]] = set()
        self._pod_tasks: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[Event | None] | None = None
        self._ip = 1

    # -- running ---------------------------------------------------------------------
    def start(self) -> None:
        self._queue = self.store.subscribe()
        self._loop_task = asyncio.create_task(self._run(self._queue), name="sandbox-controllers")

    @property
    def feed(self) -> asyncio.Queue[Event | None] | None:
        """The store subscription the controllers run on (None until started)."""
        return self._queue

    async def stop(self) -> None:
        if self._queue is not None:
            self.store.unsubscribe(self._queue)
        tasks = [*self._tasks, *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._pod_tasks.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None], pod_uid: str | None = None) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if pod_uid:
            self._pod_tasks[pod_uid] = task
            task.add_done_callback(lambda _t: self._pod_tasks.pop(pod_uid, None))

    async def _run(self, queue: asyncio.Queue[Event | None]) -> None:
        while (event := await queue.get()) is not None:
            # A StatusError means the object changed under us; the next event catches up.
            with contextlib.suppress(StatusError):
                self._handle(event)

    def _handle(self, event: Event) -> None:
        meta = event.obj["metadata"]
        if event.plural == "jobs" and event.type == "ADDED":
            self._sync_job(meta["namespace"], meta["name"])
        elif event.plural == "pods":
            if event.type == "ADDED":
                self._start_pod(event.obj)
            for owner in meta.get("ownerReferences", []) or []:
                if owner.get("kind") == "Job":
                    self._sync_job(meta["namespace"], owner["name"])
        elif event.plural == "nodes" and event.type in ("ADDED", "MODIFIED"):
            self._node_changed(event.obj)

    # -- jobs ------------------------------------------------------------------------
    def _job_pods(self, job: Obj) -> list[Obj]:
        return self._owned_pods(job["metadata"]["uid"])

    def _sync_job(self, namespace: str, name: str) -> None:
        job = self.store.find(JOBS, namespace, name)
        if job is None:
            return
        pods = self._job_pods(job)
        spec, status = job["spec"], dict(job.get("status") or {})
        phases = [p.get("status", {}).get("phase") for p in pods]
        failed = phases.count("Failed")
        succeeded = phases.count("Succeeded")
        live = [p for p in pods if p.get("status", {}).get("phase") in ("Pending", "Running")]
        active = [p for p in live if not p["metadata"].get("deletionTimestamp")]
        ready = [p for p in active if pod_ready(p)]
        conditions = list(status.get("conditions") or [])
        finished = any(c["type"] in ("Complete", "Failed") for c in conditions)
        status.setdefault("startTime", now_iso())
        if not finished and succeeded >= int(spec.get("completions") or 1):
            # Since Kubernetes 1.31 the Job controller records SuccessCriteriaMet first.
            for kind in ("SuccessCriteriaMet", "Complete"):
                conditions.append(
                    condition(kind, True, "CompletionsReached")
                    | {"message": "Reached expected number of succeeded pods"}
                )
            status["completionTime"] = now_iso()
            finished = True
        elif not finished and failed > int(spec.get("backoffLimit", 6)):
            # Since Kubernetes 1.31 the Job controller records FailureTarget first.
            for kind in ("FailureTarget", "Failed"):
                conditions.append(
                    condition(kind, True, "BackoffLimitExceeded")
                    | {"message": "Job has reached the specified backoff limit"}
                )
            finished = True
        # active, succeeded and failed are omitted when zero (omitempty); ready never is.
        status.update(
            active=len(active) or None,
            ready=len(ready),
            succeeded=succeeded or None,
            failed=failed or None,
            conditions=conditions or None,
        )
        status = {k: v for k, v in status.items() if v is not None}
        if not status.get("conditions"):
            status.pop("conditions", None)
        if status != job.get("status"):
            job["status"] = status
            self.store.update(JOBS, job)
        deleting = bool(job["metadata"].get("deletionTimestamp"))
        if not finished and not deleting and not live:
            self._create_job_pod(job)

    def _create_job_pod(self, job: Obj) -> None:
        meta, template = job["metadata"], copy.deepcopy(job["spec"]["template"])
        labels = dict(template.get("metadata", {}).get("labels") or {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": meta["uid"],
                "batch.kubernetes.io/job-name": meta["name"],
                "controller-uid": meta["uid"],
                "job-name": meta["name"],
            }
        )
        pod = {
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": dict(template.get("metadata", {}).get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template.get("spec", {}),
            "status": {"phase": "Pending", "qosClass": "Guaranteed"},
        }
        self.store.create(PODS, self.admission.prepare_create(PODS, meta["namespace"], pod))

    # -- pods ------------------------------------------------------------------------
    def fault_for(self, pod: Obj) -> PodFault | None:
        labels = pod["metadata"].get("labels") or {}
        for key in CHUTE_KEY_LABELS:
            if labels.get(key) in self.faults:
                return self.faults[labels[key]]
        return None

    def _log(self, pod: Obj, line: str) -> None:
        self.logs.setdefault(pod["metadata"]["uid"], []).append(f"{now_iso()} {line}")

    def _start_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self._pod_tasks or pod.get("status", {}).get("phase") != "Pending":
            return
        node_name = pod.get("spec", {}).get("nodeName")
        if not node_name:
            self._log(pod, "waiting: no nodeName (the sandbox has no scheduler)")
            return
        node = self.store.find(NODES, "", node_name)
        if not node_is_ready(node):
            self._log(pod, f"waiting: node {node_name} is unknown or NotReady")
            return
        self._spawn(self._pod_lifecycle(pod["metadata"]["namespace"], pod["metadata"]["name"]), uid)

    def _update_pod(self, namespace: str, name: str, change: Callable[[Obj], None]) -> Obj | None:
        pod = self.store.find(PODS, namespace, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return None
        change(pod)
        return self.store.update(PODS, pod)

    async def _pod_lifecycle(self, namespace: str, name: str) -> None:
        pod = self.store.find(PODS, namespace, name)
        if pod is None:
            return
        fault = self.fault_for(pod)
        node = self.store.find(NODES, "", pod["spec"]["nodeName"]) or {}
        host_ip = internal_ip(node)
        self._ip += 1
        pod_ip = f"10.42.{self._ip // 250}.{self._ip % 250 + 1}"
        self._update_pod(namespace, name, lambda p: set_pending(p, host_ip, pod_ip))
        self._log(pod, f"pulling image {first_image(pod)}")
        await asyncio.sleep(self.timings.start_seconds)
        if fault is not None and fault.kind == "image_pull":
            self._log(pod, "failed to pull image: not found")
            self._update_pod(namespace, name, lambda p: set_waiting(p, "ErrImagePull"))
            await asyncio.sleep(self.timings.start_seconds)
            self._update_pod(namespace, name, lambda p: set_waiting(p, "ImagePullBackOff"))
            return
        started = now_iso()
        if self._update_pod(namespace, name, lambda p: set_running(p, started, False)) is None:
            return
        self._log(pod, "container started")
        if fault is not None and fault.kind == "crash" and fault.after_seconds <= 0:
            self._crash(namespace, name, started, fault.exit_code)
            return
        await asyncio.sleep(self.timings.ready_seconds)
        if node_is_ready(self.store.find(NODES, "", pod["spec"]["nodeName"])):
            self._update_pod(namespace, name, lambda p: set_running(p, started, True))
            self._log(pod, "readiness probe succeeded")
        if fault is not None and fault.kind == "crash":
            await asyncio.sleep(max(0.0, fault.after_seconds - self.timings.ready_seconds))
            self._crash(namespace, name, started, fault.exit_code)

    def _crash(self, namespace: str, name: str, started: str, exit_code: int) -> None:
        pod = self._update_pod(namespace, name, lambda p: set_terminated(p, started, exit_code))
        if pod is not None:
            self._log(pod, f"container exited with code {exit_code}")

    def _node_changed(self, node: Obj) -> None:
        ready = node_is_ready(node)
        name = node["metadata"]["name"]
        for pod in list(self.store.iter_raw("pods")):
            if pod.get("spec", {}).get("nodeName") != name:
                continue
            phase = pod.get("status", {}).get("phase")
            meta = pod["metadata"]
            if ready and phase == "Pending":
                self._start_pod(copy.deepcopy(pod))
            elif phase == "Running":
                self._update_pod(meta["namespace"], meta["name"], running_setter(pod, ready))

    # -- deletion --------------------------------------------------------------------
    def delete_pod(self, namespace: str, name: str, grace: int | None) -> Obj | None:
        """Returns the pod while it terminates gracefully, None once it is gone."""
        pod = self.store.get(PODS, namespace, name)
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        # A pod bound to a node terminates gracefully (its kubelet confirms), Pending or not;
        # a finished or unscheduled one goes at once.
        finished = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        bound = bool(pod.get("spec", {}).get("nodeName"))
        if grace <= 0 or finished or not bound or self.timings.termination_seconds <= 0:
            self._forget_pod(pod)
            self.store.remove(PODS, namespace, name)
            return None
        if pod["metadata"].get("deletionTimestamp"):
            return pod
        marked = self.store.mark_deleting(PODS, namespace, name, grace)
        self._spawn(
            self._finish_pod_deletion(namespace, name, min(grace, self.timings.termination_seconds))
        )
        return marked

    async def _finish_pod_deletion(self, namespace: str, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        pod = self.store.find(PODS, namespace, name)
        if pod is not None:
            self._forget_pod(pod)
            self.store.remove(PODS, namespace, name)

    def _forget_pod(self, pod: Obj) -> None:
        task = self._pod_tasks.pop(pod["metadata"]["uid"], None)
        if task is not None:
            task.cancel()

    def delete_job(
        self, namespace: str, name: str, propagation: str, grace: int | None
    ) -> Obj | None:
        job = self.store.get(JOBS, namespace, name)
        pods = self._job_pods(job)
        if propagation == "Orphan":
            for pod in pods:
                pod["metadata"].pop("ownerReferences", None)
                self.store.update(PODS, pod)
            self.store.remove(JOBS, namespace, name)
            return None
        if propagation == "Foreground":
            return self.delete_foreground(JOBS, namespace, name, grace)
        self.store.remove(JOBS, namespace, name)
        for pod in pods:
            with contextlib.suppress(StatusError):
                self.delete_pod(namespace, pod["metadata"]["name"], grace)
        return None

    def _owns_pods(self, uid: str) -> bool:
        return any(
            o.get("uid") == uid
            for p in self.store.iter_raw("pods")
            for o in p["metadata"].get("ownerReferences", []) or []
        )

    def delete_foreground(
        self, rt: ResourceType, namespace: str, name: str, grace: int | None
    ) -> Obj:
        """Mark the owner (deletionTimestamp, the foregroundDeletion finalizer) and return it;
        its pods go first, then the owner, as the garbage collector does, even when there are
        no pods to wait for."""
        owner = self.store.get(rt, namespace, name)
        meta = owner["metadata"]
        if meta.get("deletionTimestamp"):
            return owner
        meta["finalizers"] = [*(meta.get("finalizers") or []), "foregroundDeletion"]
        self.store.update(rt, owner)
        marked = self.store.mark_deleting(rt, namespace, name, 0)
        pods = self._owned_pods(meta["uid"])
        self._spawn(self._foreground(rt, namespace, name, meta["uid"], pods, grace))
        return marked

    def _owned_pods(self, uid: str) -> list[Obj]:
        return [
            copy.deepcopy(p)
            for p in self.store.iter_raw("pods")
            if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []) or [])
        ]

    async def _foreground(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        uid: str,
        pods: list[Obj],
        grace: int | None,
    ) -> None:
        queue = self.store.subscribe()
        try:
            for pod in pods:
                with contextlib.suppress(StatusError):
                    self.delete_pod(namespace, pod["metadata"]["name"], grace)
            while self._owns_pods(uid):
                if await queue.get() is None:
                    return
        finally:
            self.store.unsubscribe(queue)
        await asyncio.sleep(0)  # the owner is seen terminating before it goes, as with a GC
        owner = self.store.find(rt, namespace, name)
        if owner is not None and owner["metadata"]["uid"] == uid:
            self.store.remove(rt, namespace, name)
