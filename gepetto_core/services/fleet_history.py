"""Record the fleet after autoscaler rounds, at most once a minute, and prune old history.

The autoscaler calls `after_round` with each round's report (`Autoscaler(history=...)`); the
time used is the round's own start (`report.started_at`), never a wall clock read here, so the
rate limit is testable. Rounds between two recorded snapshots are not lost: their deploy counts
add up into the next snapshot. A paused autoscaler builds no planning snapshot; the recorder
then builds one itself when a snapshot is due (its GPUs are idle for "autoscaler paused").
Recording is best effort: an error (a database error, or a bug) is logged and the autoscaler
goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from gepetto_core.errors import GepettoError
from gepetto_core.models.history import FleetSnapshot
from gepetto_core.scheduling.policy import PlanPolicy
from gepetto_core.scheduling.snapshot import Snapshot
from gepetto_core.services.fleet_state import fleet_snapshot

if TYPE_CHECKING:
    from gepetto_core.services.autoscaler import RoundReport

log = logging.getLogger(__name__)

MIN_INTERVAL = timedelta(minutes=1)
PRUNE_EVERY = timedelta(hours=1)
DEPLOY_RESULTS = frozenset({"deployed", "preempted and deployed", "failed"})


class HistoryStore(Protocol):
    """What the recorder needs from storage (`adapters.pg_history.PgHistory`)."""

    async def add(self, snapshot: FleetSnapshot) -> bool: ...

    async def prune(self, older_than: datetime) -> int: ...


class FleetHistoryRecorder:
    def __init__(
        self,
        store: HistoryStore,
        policy: PlanPolicy,
        *,
        retention: timedelta = timedelta(days=14),
        build_snapshot: Callable[[], Awaitable[Snapshot]] | None = None,
        min_interval: timedelta = MIN_INTERVAL,
        prune_every: timedelta = PRUNE_EVERY,
    ) -> None:
        self._store = store
        self._policy = policy
        self._retention = retention
        self._build_snapshot = build_snapshot
        self._min_interval = min_interval
        self._prune_every = prune_every
        self._last_recorded: datetime | None = None
        self._last_pruned: datetime | None = None
        self._deploys = 0
        self._failed = 0

    def due(self, now: datetime) -> bool:
        return self._last_recorded is None or now - self._last_recorded >= self._min_interval

    async def after_round(self, report: RoundReport) -> FleetSnapshot | None:
        """Count the round's deploys; store a snapshot if one is due. Returns what was stored."""
        now = report.started_at
        for outcome in report.outcomes:
            if outcome.result in DEPLOY_RESULTS:
                self._deploys += 1
                self._failed += outcome.result == "failed"
        if report.error is not None or not self.due(now):
            return None
        try:
            return await self._record(report, now)
        except GepettoError as e:
            log.warning("fleet history not recorded: %s", e)
        except Exception:
            # A bug here must not stop the autoscaler (the same rule as services/loops.py).
            log.exception("fleet history not recorded: internal error")
        return None

    async def _record(self, report: RoundReport, now: datetime) -> FleetSnapshot | None:
        snapshot = report.snapshot
        if snapshot is None and self._build_snapshot is not None:
            snapshot = await self._build_snapshot()
        if snapshot is None:
            return None
        fleet = fleet_snapshot(
            snapshot,
            report.plan,
            self._policy,
            now,
            mode=report.mode,
            deploys=self._deploys,
            failed_deploys=self._failed,
        )
        await self._store.add(fleet)
        self._last_recorded = now
        self._deploys = self._failed = 0
        if self._last_pruned is None or now - self._last_pruned >= self._prune_every:
            removed = await self._store.prune(now - self._retention)
            self._last_pruned = now
            if removed:
                log.info(
                    "fleet history: pruned %d snapshots older than %s", removed, self._retention
                )
        return fleet
