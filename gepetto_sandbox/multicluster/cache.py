"""The chutes-monitor Redis cache's names and message shapes, exactly as the official
chutes-common writes them (pure: no I/O)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

RESOURCE_TYPES = ("deployment", "service", "pod", "node", "job")  # the official write order
NON_NODE_TYPES = tuple(t for t in RESOURCE_TYPES if t != "node")
TYPE_BY_KIND = {
    "Deployment": "deployment",
    "Service": "service",
    "Pod": "pod",
    "Node": "node",
    "Job": "job",
}
HEALTH_FIELDS = ("cluster_name", "state", "last_heartbeat", "error_message", "heartbeat_failures")
HEALTHY_STATES = ("active", "starting")

CLUSTERS_CHANNEL = "clusters:all"
RECONNECT_CHANNEL = "clusters:all:reconnect"


def resources_key(cluster: str, resource_type: str) -> str:
    return f"clusters:{cluster}:resources:{resource_type}"


def health_key(cluster: str) -> str:
    return f"clusters:{cluster}:health"


def cluster_of_health_key(key: str) -> str:
    return key.split(":")[1]


def field_name(obj: dict[str, Any]) -> str:
    """`{namespace}:{name}`; cluster-scoped objects (nodes) have no namespace, and the official
    code formats Python's None into the field: `None:{name}`."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}:{meta.get('name')}"


def value(obj: dict[str, Any]) -> str:
    """`json.dumps` of the wire JSON, with Python's default separators."""
    return json.dumps(obj)


def resource_channels(cluster: str, resource_type: str) -> tuple[str, ...]:
    return (
        f"cluster:{cluster}:resources",
        f"cluster:{cluster}:resources:{resource_type}",
        f"resources:{resource_type}",
        "resources:all",
    )


def timestamp(moment: datetime) -> str:
    """`datetime.isoformat()` of an aware UTC time: microseconds are omitted when they are 0,
    as the official messages do."""
    return moment.isoformat()


def resource_message(cluster: str, event_type: str, obj: dict[str, Any], at: datetime) -> str:
    event = {"type": event_type, "object": obj}
    return json.dumps({"cluster": cluster, "event": event, "timestamp": timestamp(at)})


def cluster_message(cluster: str, event_type: str, at: datetime) -> str:
    return json.dumps({"cluster": cluster, "event_type": event_type, "timestamp": timestamp(at)})


def reconnect_message(cluster: str, at: datetime) -> str:
    return json.dumps({"cluster": cluster, "timestamp": timestamp(at)})


def health_mapping(
    cluster: str,
    state: str,
    last_heartbeat: str,
    error_message: str = "",
    heartbeat_failures: int = 0,
) -> dict[str, str]:
    return {
        "cluster_name": cluster,
        "state": state,
        "last_heartbeat": last_heartbeat,
        "error_message": error_message,
        "heartbeat_failures": str(heartbeat_failures),
    }
