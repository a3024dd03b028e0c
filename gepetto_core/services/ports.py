"""The interfaces services need from the outside world (implemented by the adapters:
`PgInventory`, `PgState`, `KubeCluster`, `HttpValidatorApi`). Services depend on these, never on
an adapter or a library (an import contract in pyproject.toml checks it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from gepetto_core.kube_objects import LaunchParams
from gepetto_core.models.cluster import (
    ChuteJobView,
    ClusterHealth,
    DeployedChute,
    FleetReading,
    LeaseRecord,
    LegacyDeploymentView,
    NodeDisk,
    NodeView,
    PodListing,
    ServiceView,
)
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_core.models.state import AuditEntry, AutoscalerMode, AutoscalerModeName, LedgerEntry
from gepetto_core.models.validator import LaunchConfig, ValidatorChute, ValidatorInstance


class Cluster(Protocol):
    """Kubernetes as the services see it, in either layout: one cluster (`KubeCluster`), or one
    cluster per GPU server (`FleetCluster`, adapters/kube_fleet.py), where every write goes
    to the server's own cluster and every read says which clusters it could not see."""

    async def deploy_chute(
        self,
        chute: Chute,
        server: Server,
        gpus: Sequence[Gpu],
        deployment: Deployment,
        launch: LaunchParams,
    ) -> DeployedChute: ...

    async def undeploy(
        self, deployment_id: str, *, wait_seconds: float = 180.0, server_id: str | None = None
    ) -> bool:
        """`server_id`: the deployment's server when the caller knows it (the multi-cluster
        layout finds the cluster from it when the Job is not listed yet)."""
        ...

    async def delete_preflight(self, deployment_id: str, server_id: str | None) -> str | None:
        """Why deleting this deployment's objects must wait (None: go ahead). Always None in
        the single layout; in the multi layout the official checks (cached Job's cluster is
        the server's, cluster healthy, cached resourceVersion live)."""
        ...

    async def read_fleet(self) -> FleetReading: ...

    def cluster_health(self) -> list[ClusterHealth]: ...

    async def get_chute_job(self, deployment_id: str) -> ChuteJobView: ...

    async def read_pods(self, namespace: str | None = ...) -> PodListing: ...

    async def node_disk(self, name: str) -> NodeDisk: ...

    async def list_nodes(self, label_selector: str | None = ...) -> list[NodeView]: ...

    async def list_chute_jobs(self) -> list[ChuteJobView]: ...

    async def list_legacy_deployments(self) -> list[LegacyDeploymentView]: ...

    async def list_chute_services(self) -> list[ServiceView]: ...

    async def pod_log_tail(self, deployment_id: str, lines: int = 10) -> list[str]: ...

    async def ensure_code_configmap(self, chute: Chute, *, replace: bool = False) -> str: ...

    async def delete_code_configmap(self, chute_id: str, version: str) -> None: ...


class ServerMonitoring(Protocol):
    async def retire(self, server: Server) -> None:
        """The server left the fleet: its monitoring agent stops and the monitor's cache
        forgets its cluster (multi-cluster layout; nothing for a server without an agent).
        Never raises."""
        ...


class ValidatorApi(Protocol):
    validator_hotkey: str

    async def launch_config(self, chute_id: str, job_id: str | None = None) -> LaunchConfig: ...

    async def delete_instance(self, chute_id: str, instance_id: str) -> bool: ...

    async def delete_server(self, server_id: str) -> bool: ...

    async def delete_node(self, gpu_id: str) -> bool: ...

    async def release_job(self, job_id: str) -> None: ...

    async def get_chute(self, chute_id: str, version: str) -> ValidatorChute: ...

    async def announce_instance(
        self, chute_id: str, node_ids: list[str], host: str, port: int
    ) -> ValidatorInstance: ...

    async def activate_instance(self, chute_id: str, instance_id: str) -> ValidatorInstance: ...


class Inventory(Protocol):
    """The miner's inventory database: chutes, servers, GPUs, deployments."""

    async def upsert_chute(self, chute: Chute) -> None: ...

    async def get_chute(self, chute_id: str) -> Chute | None: ...

    async def list_chutes(self) -> list[Chute]: ...

    async def delete_chute(self, chute_id: str) -> bool: ...

    async def set_chute_image(
        self, chute_ids: list[str], image: str, chutes_version: str | None
    ) -> int: ...

    async def upsert_server(self, server: Server) -> None: ...

    async def get_server(self, server_id: str) -> Server | None: ...

    async def list_servers(self) -> list[Server]: ...

    async def set_server_locked(self, server_id: str, locked: bool) -> bool: ...

    async def delete_server(self, server_id: str) -> bool: ...

    async def upsert_gpu(self, gpu: Gpu) -> None: ...

    async def set_gpu_verified(self, gpu_id: str, verified: bool) -> bool: ...

    async def delete_gpu(self, gpu_id: str) -> bool: ...

    async def list_gpus(self, server_id: str | None = None) -> list[Gpu]: ...

    async def create_deployment(self, deployment: Deployment, gpu_count: int) -> list[Gpu]: ...

    async def get_deployment(self, deployment_id: str) -> Deployment | None: ...

    async def list_deployments(self, server_id: str | None = None) -> list[Deployment]: ...

    async def find_deployments(
        self,
        *,
        validator: str | None = None,
        chute_id: str | None = None,
        instance_id: str | None = None,
        config_id: str | None = None,
        job_id: str | None = None,
    ) -> list[Deployment]: ...

    async def update_deployment(self, deployment_id: str, **changes: Any) -> Deployment | None: ...

    async def delete_deployment(self, deployment_id: str) -> Deployment | None: ...


class StateStore(Protocol):
    """gepetto's own state the services and commands use: the failure ledger, the audit log,
    the autoscaler mode and the server and chute removals reconcile is to finish."""

    async def record_deployment_start(self, entry: LedgerEntry) -> None: ...

    async def record_deployment_end(
        self,
        deployment_id: str,
        ended_at: datetime,
        reason: str,
        *,
        counts_as_failure: bool,
        activated_at: datetime | None = None,
    ) -> bool: ...

    async def list_ledger(self, since: datetime | None = None) -> list[LedgerEntry]: ...

    async def forgive(
        self, at: datetime, by: str, chute_id: str | None = None, server_id: str | None = None
    ) -> int: ...

    async def add_audit(
        self,
        *,
        actor: str,
        source: str,
        verb: str,
        arguments: dict[str, Any],
        allowed: bool,
        result: str | None = None,
        approvals: list[Any] | None = None,
        message_link: str | None = None,
    ) -> int: ...

    async def finish_audit(self, audit_id: int, result: str) -> None: ...

    async def list_audit(
        self, *, actor: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[AuditEntry]: ...

    async def get_autoscaler_mode(self) -> AutoscalerMode: ...

    async def set_autoscaler_mode(
        self, mode: AutoscalerModeName, by: str, paused_until: datetime | None = None
    ) -> AutoscalerMode: ...

    async def request_server_removal(self, server_id: str, reason: str) -> bool: ...

    async def list_server_removals(self) -> dict[str, str]: ...

    async def request_chute_removal(self, chute_id: str, reason: str) -> bool: ...

    async def list_chute_removals(self) -> dict[str, str]: ...


class Lease(Protocol):
    """One coordination.k8s.io Lease (leader election)."""

    name: str
    namespace: str
    request_timeout: float

    async def read(self) -> LeaseRecord | None: ...

    async def create(self, record: LeaseRecord) -> LeaseRecord: ...

    async def replace(self, record: LeaseRecord) -> LeaseRecord: ...
