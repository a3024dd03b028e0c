"""What gepetto reads from Kubernetes, as plain read-only views (no client-library types leak
past the adapter)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class NodeView(_View):
    """A Kubernetes node seen as a (possible) miner server; `server_id` is the node uid."""

    name: str
    server_id: str
    labels: dict[str, str] = Field(default_factory=dict)
    ready: bool
    unschedulable: bool = False
    gpu_short_ref: str | None = None
    validator: str | None = None
    worker: bool = False
    external_ip: str | None = None
    gpu_count: int = 0
    gpu_memory_mib: int | None = None
    is_tee: bool = False
    cpu_capacity: float = 0.0
    memory_gib: float = 0.0
    ephemeral_storage_gib: float = 0.0


class NodeDisk(_View):
    """Ephemeral storage on a node in GiB: available = total − requested − reserve, ≥ 0."""

    node: str
    total_gib: float
    requested_gib: float
    reserve_gib: float
    available_gib: float


class ContainerStateView(_View):
    """One of Kubernetes' running / waiting / terminated container states."""

    state: str
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class PodView(_View):
    name: str
    namespace: str
    uid: str
    labels: dict[str, str] = Field(default_factory=dict)
    node_name: str | None = None
    phase: str | None = None
    ready: bool = False
    restart_count: int = 0
    state: ContainerStateView | None = None
    last_state: ContainerStateView | None = None
    deleting: bool = False
    created_at: datetime | None = None
    pod_ip: str | None = None
    started_at: datetime | None = None


class JobStatusView(_View):
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    ready: int = 0
    start_time: datetime | None = None
    completion_time: datetime | None = None


class ChuteJobView(_View):
    """A Job labelled `chutes/chute=true`, with its pods."""

    name: str
    namespace: str
    uid: str
    deployment_id: str | None
    chute_id: str | None
    version: str | None
    config_id: str | None = None
    job_id: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    node_name: str | None = None
    ready: bool = False
    status: JobStatusView = Field(default_factory=JobStatusView)
    pods: list[PodView] = Field(default_factory=list)
    deleting: bool = False
    created_at: datetime | None = None
    resource_version: str | None = None


class LegacyDeploymentView(_View):
    """An apps/v1 Deployment from before chutes ran as Jobs (never purged as untracked)."""

    name: str
    namespace: str
    uid: str
    deployment_id: str | None
    chute_id: str | None
    version: str | None
    labels: dict[str, str] = Field(default_factory=dict)
    node_name: str | None = None
    replicas: int = 0
    ready_replicas: int = 0
    is_legacy: bool = True


class ServiceView(_View):
    name: str
    namespace: str
    deployment_id: str | None
    labels: dict[str, str] = Field(default_factory=dict)
    node_ports: dict[str, int] = Field(default_factory=dict, description="'TCP/8000' → node port")

    def node_port(self, port: int, proto: str = "TCP") -> int | None:
        return self.node_ports.get(f"{proto}/{port}")


class DeployedChute(_View):
    """What `KubeCluster.deploy_chute` made: the Service (host port = node port of 8000)."""

    deployment_id: str
    job_name: str
    service: ServiceView
    node_name: str
    primary_port: int


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A coordination.k8s.io Lease as leader election reads it."""

    holder: str | None
    duration_seconds: int | None
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str | None = None


ClusterState = Literal["reachable", "unreachable", "unknown"]


class ClusterHealth(_View):
    """One server's cluster as gepetto last saw it (multi-cluster layout; the single layout
    reports its one cluster under the name "*").

    `state`: reachable (the last read worked), unreachable (it failed: `error` says why),
    unknown (never read yet, or no kubeconfig stored). `data_age_seconds`: how old the data
    behind the last good read is (direct: since that read; monitor: since the cluster's last
    heartbeat or snapshot in the cache)."""

    name: str  # servers.name = kubeconfig context = the cache's {cluster} segment
    state: ClusterState
    source: Literal["single", "direct", "monitor"]
    last_seen: datetime | None = None
    data_age_seconds: float | None = None
    error: str | None = None


class PodListing(_View):
    """Pods for the `pods` command. `unread` names every cluster whose pods are not in the list
    (multi-cluster layout: name -> reason), so a gap is never shown as "no pods"."""

    pods: list[PodView]
    unread: dict[str, str] = Field(default_factory=dict)


class FleetReading(_View):
    """Everything reconcile reads from Kubernetes in one pass.

    A list is None when nothing could be read (the single layout's one cluster failed). In the
    multi-cluster layout the lists hold the objects of the clusters that were read, and
    `unknown` names every cluster that was not (name -> reason): what is on an unknown cluster
    is *unknown*, never *empty*."""

    jobs: list[ChuteJobView] | None
    legacy: list[LegacyDeploymentView] | None
    services: list[ServiceView] | None
    nodes: list[NodeView] | None
    unknown: dict[str, str] = Field(default_factory=dict)
    health: list[ClusterHealth] = Field(default_factory=list)
