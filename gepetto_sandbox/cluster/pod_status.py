"""What a pod's status looks like at each step the sandbox plays (pending, waiting, running,
terminated), and a node's readiness: pure functions over the API objects."""

from __future__ import annotations

from collections.abc import Callable

from gepetto_sandbox.cluster.store import Obj, now_iso


def condition(kind: str, ok: bool, reason: str | None = None) -> Obj:
    cond: Obj = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now_iso()}
    if reason:
        cond["reason"] = reason
    return cond


def node_is_ready(node: Obj | None) -> bool:
    if node is None:
        return False
    for cond in node.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def running_setter(pod: Obj, ready: bool) -> Callable[[Obj], None]:
    started = started_at(pod)
    return lambda p: set_running(p, started, ready)


def pod_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", []) or []
    )


def first_image(pod: Obj) -> str:
    containers = pod.get("spec", {}).get("containers") or [{}]
    return str(containers[0].get("image", ""))


def internal_ip(node: Obj) -> str:
    for address in node.get("status", {}).get("addresses", []) or []:
        if address.get("type") == "InternalIP":
            return str(address["address"])
    return "10.0.0.1"


def started_at(pod: Obj) -> str:
    for status in pod.get("status", {}).get("containerStatuses", []) or []:
        running = status.get("state", {}).get("running")
        if running:
            return str(running.get("startedAt", now_iso()))
    return now_iso()


def container_statuses(pod: Obj, state: Obj, ready: bool, restarts: int = 0) -> list[Obj]:
    return [
        {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": "",
            "ready": ready,
            "restartCount": restarts,
            "started": "running" in state,
            "state": state,
            "lastState": {},
        }
        for c in pod["spec"].get("containers", [])
    ]


def init_done(pod: Obj) -> list[Obj]:
    return [
        {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": "",
            "ready": True,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
        }
        for c in pod["spec"].get("initContainers", []) or []
    ]


def set_pending(pod: Obj, host_ip: str, pod_ip: str) -> None:
    status = pod.setdefault("status", {})
    status.update(
        phase="Pending",
        hostIP=host_ip,
        podIP=pod_ip,
        podIPs=[{"ip": pod_ip}],
        startTime=now_iso(),
        conditions=[
            condition("PodScheduled", True),
            condition("Initialized", False, "ContainersNotInitialized"),
            condition("ContainersReady", False, "ContainersNotReady"),
            condition("Ready", False, "ContainersNotReady"),
        ],
        containerStatuses=container_statuses(
            pod, {"waiting": {"reason": "ContainerCreating"}}, False
        ),
    )


def set_waiting(pod: Obj, reason: str) -> None:
    message = f'Back-off pulling image "{first_image(pod)}"'
    waiting = {"waiting": {"reason": reason, "message": message}}
    pod["status"]["containerStatuses"] = container_statuses(pod, waiting, False)


def set_running(pod: Obj, started: str, ready: bool) -> None:
    status = pod["status"]
    status["phase"] = "Running"
    status["initContainerStatuses"] = init_done(pod)
    status["containerStatuses"] = container_statuses(
        pod, {"running": {"startedAt": started}}, ready
    )
    reason = None if ready else "ContainersNotReady"
    status["conditions"] = [
        condition("PodScheduled", True),
        condition("Initialized", True),
        condition("ContainersReady", ready, reason),
        condition("Ready", ready, reason),
    ]


def set_terminated(pod: Obj, started: str, exit_code: int) -> None:
    status = pod["status"]
    policy = pod["spec"].get("restartPolicy", "Always")
    terminated = {
        "terminated": {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now_iso(),
        }
    }
    if policy == "Always" or (policy == "OnFailure" and exit_code != 0):
        restarts = int((status.get("containerStatuses") or [{}])[0].get("restartCount", 0)) + 1
        statuses = container_statuses(
            pod, {"waiting": {"reason": "CrashLoopBackOff"}}, False, restarts
        )
        for entry in statuses:
            entry["lastState"] = terminated
        status["containerStatuses"] = statuses
    else:
        status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        status["containerStatuses"] = container_statuses(pod, terminated, False)
    status["conditions"] = [
        condition("PodScheduled", True),
        condition("Initialized", True),
        condition("ContainersReady", False, "PodCompleted"),
        condition("Ready", False, "PodCompleted"),
    ]
