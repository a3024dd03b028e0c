"""Removing whole things: a server, a chute, a GPU. Each undeploys every deployment on it first
(one `Deployer.undeploy` each) and lets its row go only when none was deferred: deleting the row
would cascade to the deferred deployment's row, leaving its Job to the orphan sweep and its
ledger entry open, and in the multi-cluster layout the server row is the way to its cluster.
The callers (event handlers, reconcile) record a removal request for what is kept."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from gepetto_core.models.inventory import Deployment, Gpu, Server
from gepetto_core.services.ports import Cluster, Inventory, ServerMonitoring, ValidatorApi

if TYPE_CHECKING:
    from gepetto_core.services.deployer import UndeployResult

log = logging.getLogger(__name__)

Undeploy = Callable[[str, str], Awaitable["UndeployResult"]]


class Removals:
    def __init__(
        self,
        inventory: Inventory,
        cluster: Cluster,
        validators: Mapping[str, ValidatorApi],
        undeploy: Undeploy,
        monitoring: ServerMonitoring | None = None,
    ) -> None:
        self._inventory = inventory
        self._cluster = cluster
        self._validators = validators
        self._undeploy = undeploy
        self._monitoring = monitoring

    async def remove_server(
        self, server_id: str, reason: str, *, deregister: bool = False
    ) -> list[UndeployResult]:
        """Undeploy every deployment on the server, then delete its row; the deferred ones
        (the row then stays).

        `deregister` (the operator deleted the server): before the row goes the validator
        forgets the server too, as upstream's handler does: the whole server when it was added
        as a cluster of its own or a TEE VM (`DELETE /servers/{id}`), else each GPU
        (`DELETE /nodes/{gpu}`). A validator error raises and keeps the row for a later pass.
        Then the server's monitoring agent is stopped (multi-cluster layout)."""
        deferred = await self._undeploy_all(
            await self._inventory.list_deployments(server_id), reason
        )
        if deferred:
            return deferred
        server = await self._inventory.get_server(server_id) if deregister else None
        if server is not None:
            await self._deregister(server)
            if self._monitoring is not None:
                await self._monitoring.retire(server)
        await self._inventory.delete_server(server_id)
        return []

    async def remove_gpu(self, gpu: Gpu, reason: str) -> str | None:
        """Undeploy the GPU's deployment, deregister the GPU at its server's validator (as
        upstream does) and delete its row; why the GPU stays when the undeploy was deferred."""
        if gpu.deployment_id:
            result = await self._undeploy(gpu.deployment_id, reason)
            if result.deferred is not None:
                return result.deferred
        server = await self._inventory.get_server(gpu.server_id)
        api = self._api_of(server) if server is not None else None
        if api is not None:
            await api.delete_node(gpu.gpu_id)
        await self._inventory.delete_gpu(gpu.gpu_id)
        return None

    async def remove_chute(self, chute_id: str, reason: str) -> list[UndeployResult]:
        """Undeploy every deployment of the chute, then delete its row and its code ConfigMap;
        the deferred ones (the row then stays)."""
        mine = await self._inventory.find_deployments(chute_id=chute_id)
        deferred = await self._undeploy_all(mine, reason)
        if deferred:
            return deferred
        local = await self._inventory.get_chute(chute_id)
        await self._inventory.delete_chute(chute_id)
        if local is not None:
            await self._cluster.delete_code_configmap(chute_id, local.version)
        return []

    def _api_of(self, server: Server) -> ValidatorApi | None:
        api = self._validators.get(server.validator)
        if api is None:
            log.warning("server %s: validator %s not configured", server.name, server.validator)
        return api

    async def _deregister(self, server: Server) -> None:
        api = self._api_of(server)
        if api is None:
            return
        if server.kubeconfig is not None or server.is_tee:
            await api.delete_server(server.server_id)
        else:
            for gpu in await self._inventory.list_gpus(server.server_id):
                await api.delete_node(gpu.gpu_id)
        log.info("server %s deregistered at validator %s", server.name, server.validator)

    async def _undeploy_all(
        self, deployments: Sequence[Deployment], reason: str
    ) -> list[UndeployResult]:
        """Undeploy each (a deferred one does not stop the others); the deferred results."""
        deferred: list[UndeployResult] = []
        for deployment in deployments:
            result = await self._undeploy(deployment.deployment_id, reason)
            if result.deferred is not None:
                deferred.append(result)
        return deferred
