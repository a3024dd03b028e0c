"""The chutes-monitor Redis cache, read as gepetto's views (pure: no I/O).

The monitor keeps one hash per cluster and resource type, `clusters:{cluster}:resources:{type}`,
whose fields are `{namespace}:{name}` (`None:{name}` for nodes) and whose values are the
Kubernetes wire JSON of one object (camelCase; list items carry no kind/apiVersion), plus a
health hash `clusters:{cluster}:health` (docs/multi-cluster.md). What is decided here:

- whether a cluster's cached data may be believed (`health_verdict`): registered, healthy,
  a heartbeat recent enough, and not in the middle of a snapshot replace;
- the snapshot built from the hashes (`build_snapshot`); one unreadable object makes the whole
  cluster unknown (`UnreadableObject`), because a Job, pod or node silently skipped would read
  as *gone*, and reconcile acts on absence;
- the pub/sub messages (`parse_pod_message`, `parse_cluster_message`).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.cluster_source import ClusterSnapshot
from gepetto_core.adapters.kube_views import (
    chute_job_view,
    legacy_deployment_view,
    node_view,
    pod_view,
    service_view,
)
from gepetto_core.models.cluster import PodView

RESOURCE_TYPES = ("node", "pod", "job", "service", "deployment")
HEALTHY_STATES = frozenset({"active", "starting"})

POD_CHANNEL = "resources:pod"
CLUSTERS_CHANNEL = "clusters:all"
RECONNECT_CHANNEL = "clusters:all:reconnect"
CHANNELS = (POD_CHANNEL, CLUSTERS_CHANNEL, RECONNECT_CHANNEL)

NOT_REGISTERED = "not registered with the monitor"
NO_NODE = "the monitor holds no node for the cluster"

Hashes = Mapping[str, Mapping[str, str]]  # resource type -> {field: JSON text}
ChangeKind = Literal["ADDED", "DELETED", "RECONNECT", "RESUBSCRIBED"]


def health_key(cluster: str) -> str:
    return f"clusters:{cluster}:health"


def resources_key(cluster: str, resource_type: str) -> str:
    return f"clusters:{cluster}:resources:{resource_type}"


def text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def text_mapping(raw: Mapping[Any, Any]) -> dict[str, str]:
    """An HGETALL reply as str -> str, whether the client decodes responses or not."""
    return {text(k): text(v) for k, v in raw.items()}


def parse_timestamp(stamp: object) -> datetime | None:
    """An ISO-8601 time as the monitor and agents write it (`datetime.isoformat()`, which omits
    the microseconds when they are 0: a fixed `%f` format fails on those). Naive means UTC."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def health_verdict(
    health: Mapping[str, str],
    now: datetime,
    *,
    max_age: float,
    snapshot_done: datetime | None = None,
) -> datetime | str:
    """The time the cluster's cached data was last known true (its heartbeat), or why it must
    not be believed.

    - No health hash: the cluster is not registered (and its resource hashes, if any, are
      orphans or being rebuilt).
    - A state other than active/starting: the monitor itself distrusts it.
    - A heartbeat older than `max_age` (or that far in the future: clock skew) means the
      monitor or the agent stopped writing; a dead monitor never marks anything unhealthy,
      so the age is checked here and not left to it.
    - `starting`: a registration or resync is replacing the snapshot (DEL, then HSETs, not
      atomic): the hashes may be half written. Believed only when the monitor has since
      announced the snapshot complete (`snapshot_done`: the time of the `clusters:all` ADDED
      or `clusters:all:reconnect` message the subscriber saw last for this cluster)."""
    if not health:
        return NOT_REGISTERED
    state = health.get("state", "")
    if state not in HEALTHY_STATES:
        detail = health.get("error_message") or "no reason given"
        return f"the monitor reports the cluster {state or 'stateless'}: {detail}"
    beat = parse_timestamp(health.get("last_heartbeat"))
    if beat is None:
        return "the monitor holds no usable heartbeat for the cluster"
    age = (now - beat).total_seconds()
    if age > max_age:
        return f"monitor data {age:.0f} s old (limit {max_age:.0f} s)"
    if -age > max_age:
        return f"monitor heartbeat {-age:.0f} s in the future (clock skew)"
    if state == "starting" and (snapshot_done is None or snapshot_done < beat):
        return "resyncing in the monitor (state starting): the cached snapshot may be partial"
    return beat


class UnreadableObject(ValueError):
    """A cached value that is not a JSON object; the cluster it belongs to is unknown."""

    def __init__(self, resource_type: str, field: str) -> None:
        super().__init__(f"cached {resource_type} {field} is not valid JSON")
        self.resource_type = resource_type
        self.field = field


def decode_objects(
    resource_type: str, fields: Mapping[str, str], namespace: str | None
) -> list[dict[str, Any]]:
    """The objects of one hash, in field order; `namespace`: keep only that namespace's
    fields (cheaply, by the `{namespace}:` prefix, before parsing)."""
    prefix = None if namespace is None else f"{namespace}:"
    found = []
    for field, raw in fields.items():
        if prefix is not None and not field.startswith(prefix):
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            raise UnreadableObject(resource_type, field) from None
        if not isinstance(obj, dict):
            raise UnreadableObject(resource_type, field)
        found.append(obj)
    return found


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def is_chute(obj: Mapping[str, Any]) -> bool:
    """`chutes/chute=true`: the selector the direct path lists Jobs, Services and Deployments by."""
    return _labels(obj).get(ko.LABEL_CHUTE) == "true"


def pods_by_deployment(pods: Iterable[PodView]) -> dict[str, list[PodView]]:
    """Pods carrying a `chutes/deployment-id` label, grouped by it (as Jobs are joined)."""
    grouped: dict[str, list[PodView]] = defaultdict(list)
    for pod in pods:
        deployment_id = pod.labels.get(ko.LABEL_DEPLOYMENT_ID)
        if deployment_id is not None:
            grouped[deployment_id].append(pod)
    return grouped


def build_snapshot(name: str, hashes: Hashes, namespace: str, as_of: datetime) -> ClusterSnapshot:
    """One cluster from its five hashes: every node; the namespace's pods; its chute Jobs
    (with their pods), Services and legacy Deployments. Raises UnreadableObject."""

    def objects(resource_type: str, ns: str | None = namespace) -> list[dict[str, Any]]:
        return decode_objects(resource_type, hashes.get(resource_type) or {}, ns)

    nodes = [node_view(o) for o in objects("node", None)]
    pods = [pod_view(o) for o in objects("pod")]
    grouped = pods_by_deployment(pods)
    jobs = [
        chute_job_view(o, grouped.get(str(_labels(o).get(ko.LABEL_DEPLOYMENT_ID, "")), []))
        for o in objects("job")
        if is_chute(o)
    ]
    return ClusterSnapshot(
        name=name,
        jobs=jobs,
        legacy=[legacy_deployment_view(o) for o in objects("deployment") if is_chute(o)],
        services=[service_view(o) for o in objects("service") if is_chute(o)],
        nodes=nodes,
        pods=pods,
        as_of=as_of,
        job_versions={j.name: j.resource_version for j in jobs if j.resource_version},
    )


def deployment_pods(pods: Mapping[str, str], namespace: str, deployment_id: str) -> list[str]:
    """Fields of the cached pods of one deployment. A value that cannot be read counts as one
    of them: it cannot prove the pod gone."""
    prefix = f"{namespace}:"
    found = []
    for field, raw in pods.items():
        if not field.startswith(prefix):
            continue
        try:
            labels = _labels(json.loads(raw))
        except (ValueError, AttributeError):
            found.append(field)
            continue
        if labels.get(ko.LABEL_DEPLOYMENT_ID) == deployment_id:
            found.append(field)
    return found


# -- pub/sub messages ------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterChange:
    """A cluster added to or removed from the monitor, or re-snapshotted (`RECONNECT`).
    `RESUBSCRIBED` (cluster None): our subscription was re-established, so messages may have
    been missed meanwhile; whoever keeps state from these should re-read everything."""

    cluster: str | None
    kind: ChangeKind
    at: datetime | None = None


def _json_object(raw: bytes | str) -> dict[str, Any] | None:
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def parse_cluster_message(channel: str, raw: bytes | str) -> ClusterChange | None:
    """`clusters:all` {"cluster", "event_type": ADDED|DELETED, "timestamp"} or
    `clusters:all:reconnect` {"cluster", "timestamp"}; None when malformed."""
    body = _json_object(raw)
    if body is None or not isinstance(body.get("cluster"), str) or not body["cluster"]:
        return None
    at = parse_timestamp(body.get("timestamp"))
    if channel == RECONNECT_CHANNEL:
        return ClusterChange(body["cluster"], "RECONNECT", at)
    kind = body.get("event_type")
    if kind == "ADDED":
        return ClusterChange(body["cluster"], "ADDED", at)
    if kind == "DELETED":
        return ClusterChange(body["cluster"], "DELETED", at)
    return None


def parse_pod_message(raw: bytes | str) -> tuple[str, str | None] | None:
    """`resources:pod` {"cluster", "event": {"type", "object"}, "timestamp"} -> (cluster,
    the pod's chutes/deployment-id or None); None when malformed."""
    body = _json_object(raw)
    if body is None or not isinstance(body.get("cluster"), str):
        return None
    event = body.get("event")
    obj = event.get("object") if isinstance(event, dict) else None
    if not isinstance(obj, dict):
        return body["cluster"], None
    deployment_id = _labels(obj).get(ko.LABEL_DEPLOYMENT_ID)
    return body["cluster"], deployment_id if isinstance(deployment_id, str) else None


# -- error text ------------------------------------------------------------------------------
_URL_CREDENTIALS = re.compile(r"(?<=//)[^/@\s]*@")


def redact(message: str, secrets: Iterable[str | None]) -> str:
    """`message` without the given secrets and without any `user:password@` of a URL."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return _URL_CREDENTIALS.sub("***@", message)
