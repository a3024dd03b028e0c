"""Liveness and readiness: pure judgements, plus the event-loop heartbeat they read.

Liveness (`/healthz`) asks only "is this process's event loop still turning?": a heartbeat task
wakes every `interval` seconds and records how late it woke. A loop that was blocked or starved
shows up as lag; a heartbeat that stopped shows up as an old last beat.

Readiness (`/readyz`) asks "can this replica do its job now?": the database answers, and — when
this replica runs the background loops (it leads, or election is off) — the validator data it
schedules with is fresh. A standby is ready without syncing: the leader syncs, and any replica
may answer Slack from the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from gepetto_core.ops.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    checks: tuple[Check, ...]

    def as_json(self) -> dict[str, object]:
        return {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks}


@dataclass(frozen=True, slots=True)
class LoopStatus:
    """What the background loops of this process report, on the readiness clock.

    running_since: when this process started running the loops; None while it runs none
    (a standby). last_sync: when the last successful validator sync finished; None if never."""

    running_since: float | None = None
    last_sync: float | None = None


# --------------------------------------------------------------------------- pure judgements


def judge_liveness(
    *, now: float, last_beat: float | None, lag: float, interval: float, max_lag: float
) -> Verdict:
    """Alive unless the heartbeat is overdue or woke up more than `max_lag` late."""
    if last_beat is None:
        beat = Check("heartbeat", True, "starting")
    else:
        overdue = now - last_beat - interval
        beat = Check(
            "heartbeat",
            overdue <= max_lag,
            f"last beat {now - last_beat:.2f}s ago" + ("" if overdue <= max_lag else " (overdue)"),
        )
    loop = Check("event_loop", lag <= max_lag, f"lag {lag:.3f}s (max {max_lag:g}s)")
    return Verdict(beat.ok and loop.ok, (beat, loop))


def judge_readiness(
    *,
    now: float,
    database_error: str | None,
    leader: bool | None,
    loops: LoopStatus,
    max_sync_age: float,
) -> Verdict:
    """Ready when the database answers and, if this replica runs the loops, a sync succeeded
    within `max_sync_age` (or the loops started less than `max_sync_age` ago)."""
    database = Check(
        "database",
        database_error is None,
        "reachable" if database_error is None else database_error,
    )
    if leader is False:
        sync = Check("sync", True, "standby: the leader runs the loops")
    elif loops.running_since is None:
        sync = Check("sync", True, "loops not started")
    elif loops.last_sync is None or loops.last_sync < loops.running_since:
        waited = now - loops.running_since
        sync = Check(
            "sync",
            waited <= max_sync_age,
            f"no successful sync yet after {waited:.0f}s (max {max_sync_age:g}s)",
        )
    else:
        age = now - loops.last_sync
        sync = Check(
            "sync", age <= max_sync_age, f"last sync {age:.0f}s ago (max {max_sync_age:g}s)"
        )
    role = {None: "election off", True: "leader", False: "standby"}[leader]
    leadership = Check("leader", True, role)
    return Verdict(database.ok and sync.ok, (database, sync, leadership))


# --------------------------------------------------------------------------- heartbeat


class LoopMonitor:
    """Measures event-loop lag with a heartbeat task (started and stopped by its owner)."""

    def __init__(
        self,
        *,
        interval: float = 1.0,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.last_beat: float | None = None
        self.lag = 0.0
        self._metrics = metrics
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._beat(), name="gepetto-loop-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _beat(self) -> None:
        self.last_beat = self._clock()
        while True:
            expected = self._clock() + self.interval
            await asyncio.sleep(self.interval)
            woke = self._clock()
            self.lag = max(0.0, woke - expected)
            self.last_beat = woke
            if self._metrics is not None:
                self._metrics.event_loop_lag.set(self.lag)

    def verdict(self, max_lag: float) -> Verdict:
        return judge_liveness(
            now=self._clock(),
            last_beat=self.last_beat,
            lag=self.lag,
            interval=self.interval,
            max_lag=max_lag,
        )
