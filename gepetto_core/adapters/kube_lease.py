"""One coordination.k8s.io/v1 Lease through kubernetes-asyncio, for leader election."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from gepetto_core.adapters.kube_errors import translate_error
from gepetto_core.errors import ClusterNotFoundError
from gepetto_core.models.cluster import LeaseRecord

LEASE_API_VERSION = "coordination.k8s.io/v1"
_API_FAILURES = (ApiException, aiohttp.ClientError, OSError, TimeoutError)
ApiClient = client.ApiClient  # what callers hand in (they need not import the library)


def _micro_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubeLease:
    """Read, create and replace one Lease through kubernetes-asyncio; errors as ClusterError."""

    def __init__(
        self, api: client.ApiClient, namespace: str, name: str, *, request_timeout: float = 5.0
    ) -> None:
        self._coordination = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.request_timeout = request_timeout

    async def read(self) -> LeaseRecord | None:
        try:
            lease = await self._coordination.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.request_timeout
            )
        except _API_FAILURES as e:
            error = translate_error(e, f"read lease {self.name}")
            if isinstance(error, ClusterNotFoundError):
                return None
            raise error from e
        return self._record(lease)

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        try:
            lease = await self._coordination.create_namespaced_lease(
                self.namespace, self._body(record), _request_timeout=self.request_timeout
            )
        except _API_FAILURES as e:
            raise translate_error(e, f"create lease {self.name}") from e
        return self._record(lease)

    async def replace(self, record: LeaseRecord) -> LeaseRecord:
        """Write `record` if the Lease is still at `record.resource_version` (409 otherwise)."""
        try:
            lease = await self._coordination.replace_namespaced_lease(
                self.name, self.namespace, self._body(record), _request_timeout=self.request_timeout
            )
        except _API_FAILURES as e:
            raise translate_error(e, f"replace lease {self.name}") from e
        return self._record(lease)

    def _body(self, record: LeaseRecord) -> Any:  # a plain dict: the client sends it as-is
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if record.resource_version is not None:
            metadata["resourceVersion"] = record.resource_version
        return {
            "apiVersion": LEASE_API_VERSION,
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": record.holder,
                "leaseDurationSeconds": record.duration_seconds,
                "acquireTime": _micro_time(record.acquire_time),
                "renewTime": _micro_time(record.renew_time),
                "leaseTransitions": record.transitions,
            },
        }

    @staticmethod
    def _record(lease: Any) -> LeaseRecord:
        spec = lease.spec
        return LeaseRecord(
            holder=spec.holder_identity if spec else None,
            duration_seconds=spec.lease_duration_seconds if spec else None,
            acquire_time=spec.acquire_time if spec else None,
            renew_time=spec.renew_time if spec else None,
            transitions=(spec.lease_transitions or 0) if spec else 0,
            resource_version=lease.metadata.resource_version,
        )
