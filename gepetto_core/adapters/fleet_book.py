"""The multi-cluster adapter's bookkeeping, pure: per-read cluster reads merged into one
`FleetReading`, each cluster's health after a read, where each deployment's Job was last seen,
and Kubernetes label selectors applied to views already read (kube_fleet.py does the I/O)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from gepetto_core.adapters.cluster_source import (
    ClusterRead,
    ClusterSnapshot,
    ClusterUnknown,
    SourceKind,
)
from gepetto_core.errors import InvalidInputError
from gepetto_core.models.cluster import ClusterHealth, FleetReading

# --------------------------------------------------------------------------- health


def health_after(
    read: ClusterRead,
    previous: ClusterHealth | None,
    *,
    source: SourceKind,
    now: datetime,
    usable: bool = True,
) -> ClusterHealth:
    """A cluster's health once `read` came back. A snapshot: reachable, data as old as the
    snapshot. Unknown: unreachable with the reason (last seen and data age carried on from
    the last good read), or unknown when the server has no usable kubeconfig (`usable`)."""
    if isinstance(read, ClusterSnapshot):
        return ClusterHealth(
            name=read.name, state="reachable", source=source,
            last_seen=read.as_of, data_age_seconds=_age(now, read.as_of),
        )  # fmt: skip
    last_seen = previous.last_seen if previous is not None else None
    return ClusterHealth(
        name=read.name,
        state="unreachable" if usable else "unknown",
        source=source,
        last_seen=last_seen,
        data_age_seconds=_age(now, last_seen) if last_seen is not None else None,
        error=read.reason,
    )


def _age(now: datetime, then: datetime) -> float:
    return max(0.0, (now - then).total_seconds())


def health_reason(health: ClusterHealth | None, name: str) -> str | None:
    """Why a cluster is not fit for writes, in words (None: it is reachable)."""
    if health is None:
        return f"cluster {name} unknown: not read yet"
    if health.state == "reachable":
        return None
    return f"cluster {name} {health.state}: {health.error or 'no reason recorded'}"


# --------------------------------------------------------------------------- merge


def merge_reads(reads: Mapping[str, ClusterRead], health: list[ClusterHealth]) -> FleetReading:
    """Every read cluster's objects in one reading; the others named in `unknown`."""
    read = [r for _, r in sorted(reads.items()) if isinstance(r, ClusterSnapshot)]
    return FleetReading(
        jobs=[j for s in read for j in s.jobs],
        legacy=[d for s in read for d in s.legacy],
        services=[v for s in read for v in s.services],
        nodes=[n for s in read for n in s.nodes],
        unknown={n: r.reason for n, r in sorted(reads.items()) if isinstance(r, ClusterUnknown)},
        health=health,
    )


# --------------------------------------------------------------------------- job index


@dataclass(frozen=True)
class SeenJob:
    """A chute Job as the last good read of its cluster showed it."""

    cluster: str
    name: str
    resource_version: str | None


def seen_jobs(snapshot: ClusterSnapshot) -> dict[str, SeenJob]:
    """Deployment id -> its Job in this snapshot (Jobs without the label are not chutes')."""
    seen = {}
    for job in snapshot.jobs:
        if job.deployment_id:
            version = snapshot.job_versions.get(job.name, job.resource_version)
            seen[job.deployment_id] = SeenJob(snapshot.name, job.name, version)
    return seen


def where_seen(index: Mapping[str, Mapping[str, SeenJob]], deployment_id: str) -> list[SeenJob]:
    """Every cluster whose last good read had the deployment's Job, by cluster name."""
    return [jobs[deployment_id] for _, jobs in sorted(index.items()) if deployment_id in jobs]


# --------------------------------------------------------------------------- selectors

_SET = re.compile(r"^([^\s!=,()]+)\s+(in|notin)\s+\(([^)]*)\)$")
Labels = Mapping[str, str]


def label_matcher(selector: str | None) -> Callable[[Labels], bool]:
    """A Kubernetes label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
    `k notin (a)`, comma = and) as a predicate on labels already read."""
    if not selector or not selector.strip():
        return lambda labels: True
    checks = [_requirement(part.strip()) for part in _split(selector) if part.strip()]
    return lambda labels: all(check(labels) for check in checks)


def _split(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _requirement(expr: str) -> Callable[[Labels], bool]:
    found = _SET.match(expr)
    if found:
        key, op, raw = found.groups()
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in expr:
            key, value = (s.strip() for s in expr.split(op, 1))
            if not key:
                break
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: key in labels and labels[key] == value
    if expr.startswith("!") and re.fullmatch(r"[A-Za-z0-9./_-]+", expr[1:].strip()):
        return lambda labels: expr[1:].strip() not in labels
    if re.fullmatch(r"[A-Za-z0-9./_-]+", expr):
        return lambda labels: expr in labels
    raise InvalidInputError(f"unsupported label selector requirement: {expr!r}")
