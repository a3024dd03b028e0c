"""Pods with their IP and start time, for `pods`.

A local stand-in: `KubeCluster.list_pods` returns `PodView`, which has no pod IP or start time.
This reads the same API through the runtime's one ApiClient and translates errors with the
adapter's own `translate_error`. It belongs in `adapters/kube.py` (a `PodView.pod_ip` /
`started_at`); move it there when that module grows those fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from gepetto_core.adapters.kube import pod_view, translate_error
from gepetto_core.models.cluster import PodView

REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class PodRow:
    pod: PodView
    pod_ip: str | None
    started_at: datetime | None


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


async def list_pod_rows(api: client.ApiClient, namespace: str | None) -> list[PodRow]:
    core = client.CoreV1Api(api)
    what = f"list pods in {namespace}" if namespace else "list pods"
    try:
        if namespace is None:
            found = await core.list_pod_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT)
        else:
            found = await core.list_namespaced_pod(namespace, _request_timeout=REQUEST_TIMEOUT)
    except (ApiException, aiohttp.ClientError, TimeoutError, OSError) as e:
        raise translate_error(e, what) from e
    rows = []
    for item in found.items:
        raw: dict[str, Any] = api.sanitize_for_serialization(item)
        status = raw.get("status") or {}
        rows.append(
            PodRow(
                pod=pod_view(raw),
                pod_ip=status.get("podIP"),
                started_at=_when(status.get("startTime")),
            )
        )
    return rows
