"""Kubernetes objects (JSON shape) read as gepetto's views (`gepetto_core.models.cluster`):
nodes, pods, chute Jobs, Services and legacy Deployments. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gepetto_core import kube_objects as ko
from gepetto_core import kube_service, node_capacity
from gepetto_core.models.cluster import (
    ChuteJobView,
    ContainerStateView,
    JobStatusView,
    LegacyDeploymentView,
    NodeView,
    PodView,
    ServiceView,
)

WORKER_LABEL = "chutes/worker"


def node_view(obj: Mapping[str, Any]) -> NodeView:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    capacity = status.get("capacity") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    gpu_count = _int(labels.get("nvidia.com/gpu.count"))
    if gpu_count is None:
        gpu_count = _int(capacity.get("nvidia.com/gpu")) or 0
    return NodeView(
        name=meta.get("name", ""),
        server_id=meta.get("uid", ""),
        labels=labels,
        ready=ready,
        unschedulable=bool((obj.get("spec") or {}).get("unschedulable")),
        gpu_short_ref=labels.get("gpu-short-ref"),
        validator=labels.get("chutes/validator"),
        worker=WORKER_LABEL in labels,
        external_ip=labels.get("chutes/external-ip"),
        gpu_count=gpu_count,
        gpu_memory_mib=_int(labels.get("nvidia.com/gpu.memory")),
        is_tee=labels.get("chutes/tee") == "true",
        cpu_capacity=float(node_capacity.parse_quantity(capacity.get("cpu", "0"))),
        memory_gib=node_capacity.quantity_gib(capacity.get("memory")),
        ephemeral_storage_gib=node_capacity.quantity_gib(capacity.get("ephemeral-storage")),
    )


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _state(raw: Mapping[str, Any] | None) -> ContainerStateView | None:
    for name in ("running", "waiting", "terminated"):
        detail = (raw or {}).get(name)
        if detail is not None:
            return ContainerStateView(
                state=name,
                reason=detail.get("reason"),
                message=detail.get("message"),
                exit_code=detail.get("exitCode"),
                started_at=detail.get("startedAt"),
                finished_at=detail.get("finishedAt"),
            )
    return None


def pod_view(obj: Mapping[str, Any]) -> PodView:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    containers = status.get("containerStatuses") or []
    first = containers[0] if containers else {}
    ready = (
        status.get("phase") == "Running"
        and bool(containers)
        and all(c.get("ready") for c in containers)
    )
    return PodView(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        uid=meta.get("uid", ""),
        labels=meta.get("labels") or {},
        node_name=(obj.get("spec") or {}).get("nodeName"),
        phase=status.get("phase"),
        ready=ready,
        restart_count=int(first.get("restartCount", 0)),
        state=_state(first.get("state")),
        last_state=_state(first.get("lastState")),
        deleting=bool(meta.get("deletionTimestamp")),
        created_at=meta.get("creationTimestamp"),
        pod_ip=status.get("podIP"),
        started_at=status.get("startTime"),
    )


def chute_job_view(obj: Mapping[str, Any], pods: Sequence[PodView]) -> ChuteJobView:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    labels = meta.get("labels") or {}
    template_spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return ChuteJobView(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        uid=meta.get("uid", ""),
        deployment_id=labels.get(ko.LABEL_DEPLOYMENT_ID),
        chute_id=labels.get(ko.LABEL_CHUTE_ID),
        version=labels.get(ko.LABEL_VERSION),
        config_id=labels.get(ko.LABEL_CONFIG_ID),
        job_id=labels.get(ko.LABEL_JOB_ID),
        labels=labels,
        node_name=template_spec.get("nodeName"),
        ready=any(p.ready for p in pods),
        status=JobStatusView(
            active=status.get("active") or 0,
            succeeded=status.get("succeeded") or 0,
            failed=status.get("failed") or 0,
            ready=status.get("ready") or 0,
            start_time=status.get("startTime"),
            completion_time=status.get("completionTime"),
        ),
        pods=list(pods),
        deleting=bool(meta.get("deletionTimestamp")),
        created_at=meta.get("creationTimestamp"),
        resource_version=meta.get("resourceVersion"),
    )


def service_view(obj: Mapping[str, Any]) -> ServiceView:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    return ServiceView(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        deployment_id=labels.get(ko.LABEL_DEPLOYMENT_ID),
        labels=labels,
        node_ports={
            f"{proto}/{port}": np for (proto, port), np in kube_service.node_ports_of(obj).items()
        },
    )


def legacy_deployment_view(obj: Mapping[str, Any]) -> LegacyDeploymentView:
    meta, status, spec = obj.get("metadata") or {}, obj.get("status") or {}, obj.get("spec") or {}
    labels = meta.get("labels") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    return LegacyDeploymentView(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        uid=meta.get("uid", ""),
        deployment_id=labels.get(ko.LABEL_DEPLOYMENT_ID),
        chute_id=labels.get(ko.LABEL_CHUTE_ID),
        version=labels.get(ko.LABEL_VERSION),
        labels=labels,
        node_name=pod_spec.get("nodeName"),
        replicas=spec.get("replicas") or 0,
        ready_replicas=status.get("readyReplicas") or 0,
    )
