"""Activation of legacy chutes (chutes library < 0.3.0): they cannot activate themselves with a
launch JWT, so once their Job is ready gepetto tells the validator
(`docs/protocol.md#launch-configs`). Newer chutes activate themselves and the validator's
`instance_activated` event reports it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from gepetto_core.clock import utcnow
from gepetto_core.errors import ClusterError, ValidatorError
from gepetto_core.kube_objects import uses_launch_config
from gepetto_core.services.ports import Cluster, Inventory, ValidatorApi

log = logging.getLogger(__name__)


class LegacyActivator:
    def __init__(
        self,
        inventory: Inventory,
        cluster: Cluster,
        validators: Mapping[str, ValidatorApi],
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._inventory = inventory
        self._cluster = cluster
        self._validators = validators
        self._clock = clock

    async def run_once(self) -> list[str]:
        """Activate every ready legacy instance; returns the deployment ids activated."""
        chutes = {c.chute_id: c for c in await self._inventory.list_chutes()}
        waiting = [
            d
            for d in await self._inventory.list_deployments()
            if not d.active
            and not d.stub
            and d.instance_id
            and not d.job_id
            and d.chute_id in chutes
            and not uses_launch_config(chutes[d.chute_id])
        ]
        if not waiting:
            return []
        try:
            ready = {j.deployment_id for j in await self._cluster.list_chute_jobs() if j.ready}
        except ClusterError as e:
            log.warning("legacy activation: cannot list jobs: %s", e)
            return []
        activated = []
        for d in waiting:
            if d.deployment_id not in ready or d.instance_id is None:
                continue
            try:
                await self._validators[d.validator].activate_instance(d.chute_id, d.instance_id)
            except (ValidatorError, KeyError) as e:
                log.warning("legacy activation of %s failed: %s", d.deployment_id, e)
                continue
            now = self._clock()
            await self._inventory.update_deployment(
                d.deployment_id, active=True, activated_at=now, verified_at=d.verified_at or now
            )
            activated.append(d.deployment_id)
        return activated
