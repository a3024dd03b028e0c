"""The background loops of a gepetto process: validator sync, reconcile, autoscale and event
intake. Only the leader runs them (see `serve`); each loop survives its own failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from gepetto_core.errors import GepettoError
from gepetto_core.ops.metrics import METRICS
from gepetto_core.services.activator import LegacyActivator
from gepetto_core.services.autoscaler import Autoscaler
from gepetto_core.services.reconcile_service import Reconciler, ReconcileReport
from gepetto_core.services.sync import SyncService

log = logging.getLogger(__name__)

ReconcileCallback = Callable[[ReconcileReport], Awaitable[None]]


class EventSource(Protocol):
    async def run(self, stop: asyncio.Event | None = None) -> None: ...


async def every(
    interval: float, stop: asyncio.Event, work: Callable[[], Awaitable[object]], name: str
) -> None:
    """Run `work` now and then every `interval` seconds until `stop`; a failure is logged and
    the next turn comes as usual."""
    while not stop.is_set():
        try:
            with METRICS.time_loop(name):
                await work()
        except GepettoError as e:
            log.warning("%s failed: %s", name, e)
        except Exception:
            # A bug, not a dependency failure: log it in full, but a miner's loops must not
            # stop at 3 a.m. because one pass hit it.
            log.exception("%s failed unexpectedly", name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def reconcile_loop(
    reconciler: Reconciler,
    interval: float,
    stop: asyncio.Event,
    on_report: ReconcileCallback | None = None,
) -> None:
    async def once() -> None:
        report = await reconciler.run_once()
        if on_report is not None:
            await on_report(report)

    await every(interval, stop, once, "reconcile")


async def run_loops(
    *,
    stop: asyncio.Event,
    sync: SyncService,
    sync_interval: float,
    reconciler: Reconciler,
    reconcile_interval: float,
    autoscaler: Autoscaler | None,
    activator: LegacyActivator | None = None,
    activate_interval: float = 5.0,
    event_sources: Sequence[EventSource] = (),
    on_reconcile: ReconcileCallback | None = None,
) -> None:
    """Run every loop until `stop` is set (or the task is cancelled, e.g. on losing the lease)."""
    async with asyncio.TaskGroup() as group:
        group.create_task(every(sync_interval, stop, sync.sync_all, "sync"), name="sync")
        group.create_task(
            reconcile_loop(reconciler, reconcile_interval, stop, on_reconcile), name="reconcile"
        )
        if autoscaler is not None:
            group.create_task(autoscaler.run(stop), name="autoscaler")
        if activator is not None:
            group.create_task(
                every(activate_interval, stop, activator.run_once, "legacy activation"),
                name="activator",
            )
        for source in event_sources:
            group.create_task(source.run(stop), name=f"events-{type(source).__name__}")
