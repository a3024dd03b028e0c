"""The interfaces services need from the outside world (implemented by the adapters:
`KubeCluster`, `HttpValidatorApi`). Services depend on these, never on a library."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gepetto_core.kube_objects import LaunchParams
from gepetto_core.models.cluster import (
    ChuteJobView,
    DeployedChute,
    LegacyDeploymentView,
    NodeView,
    ServiceView,
)
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_core.models.validator import LaunchConfig, ValidatorChute, ValidatorInstance


class Cluster(Protocol):
    async def deploy_chute(
        self,
        chute: Chute,
        server: Server,
        gpus: Sequence[Gpu],
        deployment: Deployment,
        launch: LaunchParams,
    ) -> DeployedChute: ...

    async def undeploy(self, deployment_id: str, *, wait_seconds: float = 180.0) -> bool: ...

    async def list_nodes(self, label_selector: str | None = ...) -> list[NodeView]: ...

    async def list_chute_jobs(self) -> list[ChuteJobView]: ...

    async def list_legacy_deployments(self) -> list[LegacyDeploymentView]: ...

    async def list_chute_services(self) -> list[ServiceView]: ...

    async def pod_log_tail(self, deployment_id: str, lines: int = 10) -> list[str]: ...

    async def ensure_code_configmap(self, chute: Chute, *, replace: bool = False) -> str: ...

    async def delete_code_configmap(self, chute_id: str, version: str) -> None: ...


class ValidatorApi(Protocol):
    validator_hotkey: str

    async def launch_config(self, chute_id: str, job_id: str | None = None) -> LaunchConfig: ...

    async def delete_instance(self, chute_id: str, instance_id: str) -> bool: ...

    async def release_job(self, job_id: str) -> None: ...

    async def get_chute(self, chute_id: str, version: str) -> ValidatorChute: ...

    async def announce_instance(
        self, chute_id: str, node_ids: list[str], host: str, port: int
    ) -> ValidatorInstance: ...

    async def activate_instance(self, chute_id: str, instance_id: str) -> ValidatorInstance: ...
