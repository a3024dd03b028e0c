"""Server-side printing: the `meta.k8s.io/v1 Table` kubectl asks for, with the usual columns."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gepetto_sandbox.cluster.pod_status import node_is_ready
from gepetto_sandbox.cluster.store import Obj


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def age(obj: Obj) -> str:
    return _since(obj.get("metadata", {}).get("creationTimestamp"))


def _since(stamp: str | None, until: str | None = None) -> str:
    if not stamp:
        return "<unknown>"
    start = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    end = datetime.now(UTC)
    if until:
        end = datetime.strptime(until, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int((end - start).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _node_row(o: Obj) -> list[Any]:
    status = "Ready" if node_is_ready(o) else "NotReady"
    if o.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    version = o.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
    return [status, "<none>", age(o), version]


def _pod_row(o: Obj) -> list[Any]:
    status = o.get("status", {})
    containers = status.get("containerStatuses") or []
    ready = sum(1 for c in containers if c.get("ready"))
    total = len(o.get("spec", {}).get("containers", []))
    shown = status.get("phase", "Pending")
    for c in containers:
        state = c.get("state", {})
        if "waiting" in state and state["waiting"].get("reason"):
            shown = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            shown = state["terminated"]["reason"]
    if o["metadata"].get("deletionTimestamp"):
        shown = "Terminating"
    restarts = sum(int(c.get("restartCount", 0)) for c in containers)
    ip = status.get("podIP") or "<none>"
    node = o.get("spec", {}).get("nodeName") or "<none>"
    return [f"{ready}/{total}", shown, restarts, age(o), ip, node, "<none>", "<none>"]


def _job_row(o: Obj) -> list[Any]:
    status = o.get("status", {})
    conditions = {c["type"] for c in status.get("conditions", []) or [] if c["status"] == "True"}
    shown = (
        "Complete"
        if "Complete" in conditions
        else "Failed"
        if "Failed" in conditions
        else ("Running")
    )
    if o["metadata"].get("deletionTimestamp"):
        shown = "Terminating"
    completions = f"{status.get('succeeded', 0)}/{o.get('spec', {}).get('completions', 1)}"
    duration = _since(status.get("startTime"), status.get("completionTime"))
    return [shown, completions, duration, age(o)]


def _service_row(o: Obj) -> list[Any]:
    spec = o.get("spec", {})
    ports = ",".join(
        f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}"
        if p.get("nodePort")
        else f"{p['port']}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports", []) or []
    )
    return [spec.get("type", ""), spec.get("clusterIP", ""), "<none>", ports, age(o)]


def _deployment_row(o: Obj) -> list[Any]:
    status, spec = o.get("status", {}), o.get("spec", {})
    ready = f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}"
    return [ready, status.get("updatedReplicas", 0), status.get("availableReplicas", 0), age(o)]


# (column, priority): kubectl shows priority-1 columns only with `-o wide`, as the real API
# server's printers declare them.
WIDE = 1
_COLUMNS: dict[str, tuple[list[tuple[str, int]], Callable[[Obj], list[Any]]]] = {
    "nodes": ([("Status", 0), ("Roles", 0), ("Age", 0), ("Version", 0)], _node_row),
    "pods": (
        [
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", WIDE),
            ("Node", WIDE),
            ("Nominated Node", WIDE),
            ("Readiness Gates", WIDE),
        ],
        _pod_row,
    ),
    "jobs": ([("Status", 0), ("Completions", 0), ("Duration", 0), ("Age", 0)], _job_row),
    "services": (
        [("Type", 0), ("Cluster-IP", 0), ("External-IP", 0), ("Port(s)", 0), ("Age", 0)],
        _service_row,
    ),
    "deployments": (
        [("Ready", 0), ("Up-to-date", 0), ("Available", 0), ("Age", 0)],
        _deployment_row,
    ),
}


def table(plural: str, items: list[Obj], resource_version: int) -> dict[str, Any]:
    names, row = _COLUMNS.get(plural, ([("Age", 0)], lambda o: [age(o)]))
    columns = [
        {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}
    ]
    columns += [
        {"name": n, "type": "string", "format": "", "description": "", "priority": p}
        for n, p in names
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": columns,
        "rows": [
            {
                "cells": [o["metadata"]["name"], *row(o)],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                },
            }
            for o in items
        ],
    }
