"""One gepetto process: the runtime (adapters and services, built by wiring.py), the autoscaler
and the background loops, with observers told what each reconcile pass and autoscaler round did
(the console in the demo, Slack alerts in `serve`). Shared by `gepetto serve` and `gepetto demo`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from gepetto_core.clock import utcnow
from gepetto_core.config import Settings
from gepetto_core.errors import GepettoError
from gepetto_core.scheduling.snapshot import Snapshot
from gepetto_core.services.activator import LegacyActivator
from gepetto_core.services.autoscaler import Autoscaler, RoundReport
from gepetto_core.services.fleet_history import MIN_INTERVAL, FleetHistoryRecorder
from gepetto_core.services.loops import run_loops
from gepetto_core.services.planning_input import load_snapshot, plan_policy
from gepetto_core.services.reconcile_service import ReconcileReport
from gepetto_core.wiring import Runtime, build_runtime

log = logging.getLogger(__name__)
# Node disk reads at once when the autoscaler gathers its input (one per server).
DISK_READS_AT_ONCE = 16


class Observer(Protocol):
    """Told about the loops' results (alerts, digests, the demo console)."""

    async def reconciled(self, report: ReconcileReport) -> None: ...

    async def autoscaled(self, report: RoundReport) -> None: ...


@dataclass
class _Waker:
    """Events wake the autoscaler; it is built after the runtime that delivers them."""

    autoscaler: Autoscaler | None = None

    async def __call__(self, why: str) -> None:
        if self.autoscaler is not None:
            self.autoscaler.wake(why)


@dataclass
class GepettoProcess:
    rt: Runtime
    autoscaler: Autoscaler
    activator: LegacyActivator
    observers: list[Observer] = field(default_factory=list)

    async def _reconciled(self, report: ReconcileReport) -> None:
        for observer in self.observers:
            await observer.reconciled(report)

    async def run_loops(self, stop: asyncio.Event) -> None:
        """The leader's work: every loop until `stop` (or cancellation on losing the lease)."""
        settings = self.rt.settings
        await run_loops(
            stop=stop,
            sync=self.rt.sync,
            sync_interval=settings.sync_interval_seconds,
            reconciler=self.rt.reconciler,
            reconcile_interval=settings.reconcile_interval_seconds,
            autoscaler=self.autoscaler,
            activator=self.activator,
            event_sources=self.rt.event_sources(),
            on_reconcile=self._reconciled,
        )

    async def close(self) -> None:
        await self.rt.close()


async def start_process(
    settings: Settings,
    *,
    observers: Sequence[Observer] = (),
    clock: Callable[[], datetime] = utcnow,
    history_every: timedelta = MIN_INTERVAL,
) -> GepettoProcess:
    waker = _Waker()
    rt = await build_runtime(settings, wake=waker, clock=clock)
    try:
        rt.event_sources()  # a missing REDIS_URL fails now, not when this replica leads
    except GepettoError:
        await rt.close()
        raise

    async def build_snapshot() -> Snapshot:
        disk = await _disk_free(rt)
        loaded = await load_snapshot(
            rt.inventory, rt.state, rt.sync.snapshots, clock(), disk_free_gb=disk
        )
        return loaded.snapshot

    watchers = list(observers)

    async def autoscaled(report: RoundReport) -> None:
        for observer in watchers:
            await observer.autoscaled(report)

    # #26: fleet history after each round (at most once a minute), pruned past the retention.
    history = FleetHistoryRecorder(
        rt.history,
        plan_policy(settings),
        retention=timedelta(days=settings.history_retention_days),
        build_snapshot=build_snapshot,
        min_interval=history_every,
    )
    autoscaler = Autoscaler(
        rt.state,
        rt.deployer,
        rt.validators,
        build_snapshot,
        policy=plan_policy(settings),
        interval=settings.autoscale_interval_seconds,
        max_in_flight=settings.max_deploys_in_flight,
        clock=clock,
        on_round=autoscaled,
        history=history,
        synced=lambda: rt.sync.snapshots,
    )
    waker.autoscaler = autoscaler
    activator = LegacyActivator(rt.inventory, rt.cluster, rt.validators, clock=clock)
    return GepettoProcess(rt, autoscaler, activator, watchers)


async def _disk_free(rt: Runtime) -> dict[str, float]:
    """Free disk per server id, for the planner's disk rule; a node we cannot read is left out
    (unknown) rather than guessed. Servers are read concurrently (in the multi-cluster layout
    each is its own cluster), a few at a time."""
    servers = await rt.inventory.list_servers()
    limit = asyncio.Semaphore(DISK_READS_AT_ONCE)

    async def available(name: str) -> float | None:
        async with limit:
            try:
                return (await rt.cluster.node_disk(name)).available_gib
            except GepettoError as e:
                log.debug("disk of %s unknown: %s", name, e)
                return None

    found = await asyncio.gather(*(available(s.name) for s in servers))
    return {s.server_id: gib for s, gib in zip(servers, found, strict=True) if gib is not None}
