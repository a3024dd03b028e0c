"""Leader election on a coordination.k8s.io/v1 Lease: only one replica runs the loops.

    elector = LeaderElector(KubeLease(api, "chutes", "gepetto-leader"), identity=pod_name,
                            lease_seconds=15, renew_seconds=2,
                            on_started_leading=run_loops, on_stopped_leading=None)
    await elector.run(stop)          # until `stop` is set

How it decides (the pure part is `plan_step`):
- A candidate reads the Lease. Nobody holds it (absent, or released) → take it. Someone else
  holds it → take it only after the record has stayed unchanged for the holder's
  `leaseDurationSeconds`, measured on the candidate's own monotonic clock from when it first saw
  that record — never by comparing the holder's timestamps with our clock, so clock skew between
  machines cannot cause two leaders.
- Writes are `replace` with the resourceVersion that was read (optimistic locking): of two
  candidates racing for an expired lease, the second write gets 409 and stays a standby.
- The leader renews every `renew_seconds`. If it cannot renew for `renew_deadline` (< the lease
  duration) it stops leading on its own, before any standby may take over.
- Leading = `on_started_leading()` runs as a task. Losing the lease cancels that task (then
  `on_stopped_leading()` runs); if the task ends by itself, the lease is released so another
  replica can take over.

Stopping: setting `stop` is a graceful hand-over (the loops are cancelled and the lease released,
so the standby takes over at its next retry). Cancelling `run()` is treated like a crash: the
loops are cancelled but the lease is not touched (no I/O during cancellation); the standby takes
over when the lease expires.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from gepetto_core.clock import utcnow
from gepetto_core.config import Settings
from gepetto_core.errors import (
    ClusterConflictError,
    ClusterError,
    ConfigError,
)
from gepetto_core.models.cluster import LeaseRecord
from gepetto_core.ops.metrics import Metrics
from gepetto_core.services.ports import Lease

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- pure decisions


@dataclass(frozen=True, slots=True)
class Observation:
    """A lease record as last seen by a candidate, and when (candidate's monotonic clock)."""

    resource_version: str | None
    holder: str | None
    seen_at: float


class Step(enum.Enum):
    CREATE = "create"  # no Lease object yet
    TAKE = "take"  # free, released, expired, or already ours: write ourselves in
    WAIT = "wait"  # someone else holds a live lease


def plan_step(
    record: LeaseRecord | None,
    identity: str,
    observed: Observation | None,
    now: float,
    default_lease_seconds: float,
) -> tuple[Step, Observation | None]:
    """What a candidate (not the leader) does with the lease it just read, and what it now
    remembers having seen. Expiry counts from the first time this exact record was seen."""
    if record is None:
        return Step.CREATE, None
    if observed is None or (observed.resource_version, observed.holder) != (
        record.resource_version,
        record.holder,
    ):
        observed = Observation(record.resource_version, record.holder, now)
    if not record.holder or record.holder == identity:
        return Step.TAKE, observed
    duration = record.duration_seconds or default_lease_seconds
    if now - observed.seen_at >= duration:
        return Step.TAKE, observed
    return Step.WAIT, observed


def claimed(
    record: LeaseRecord | None, identity: str, lease_seconds: int, now: datetime
) -> LeaseRecord:
    """The record that makes `identity` the holder (a new term unless it already held it)."""
    if record is not None and record.holder == identity:
        return replace(record, duration_seconds=lease_seconds, renew_time=now)
    transitions = 0 if record is None else record.transitions + (1 if record.holder else 0)
    return LeaseRecord(
        holder=identity,
        duration_seconds=lease_seconds,
        acquire_time=now,
        renew_time=now,
        transitions=transitions,
        resource_version=None if record is None else record.resource_version,
    )


def released(record: LeaseRecord, now: datetime) -> LeaseRecord:
    """The record after a graceful hand-over: no holder, so any candidate may take it now."""
    return replace(record, holder=None, renew_time=now)


# --------------------------------------------------------------------------- the elector


class LeaderElector:
    def __init__(
        self,
        lease: Lease,
        identity: str,
        lease_seconds: int,
        renew_seconds: float,
        on_started_leading: Callable[[], Coroutine[Any, Any, None]],
        on_stopped_leading: Callable[[], Awaitable[None]] | None = None,
        *,
        renew_deadline: float | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        deadline = renew_deadline if renew_deadline is not None else lease_seconds * 2 / 3
        if not 0 < renew_seconds < deadline < lease_seconds:
            raise ValueError(
                "need 0 < renew_seconds < renew_deadline < lease_seconds "
                f"(got {renew_seconds}, {deadline}, {lease_seconds})"
            )
        self.lease = lease
        # A lease call that hangs must fail well inside the renew deadline.
        lease.request_timeout = max(0.1, min(5.0, deadline / 2))
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.renew_deadline = deadline
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._metrics = metrics
        self._clock = clock
        self._wall = wall
        self._leading = False
        self._work: asyncio.Task[None] | None = None
        self._renewed_at = 0.0  # monotonic start of the last successful write
        self._observed: Observation | None = None

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def observed_holder(self) -> str | None:
        """The holder in the last lease record this replica read (None: free or unknown)."""
        if self._leading:
            return self.identity
        return self._observed.holder if self._observed is not None else None

    async def run(self, stop: asyncio.Event) -> None:
        """Campaign, lead and renew until `stop` is set; then hand over gracefully."""
        stop_waiter = asyncio.create_task(stop.wait())
        graceful = False
        try:
            while not stop.is_set():
                if self._leading:
                    await self._renew()
                else:
                    await self._campaign()
                await self._pause(stop_waiter)
            graceful = True
        finally:
            stop_waiter.cancel()
            await asyncio.gather(stop_waiter, return_exceptions=True)
            was_leading = self._leading
            await self._stop_leading("stopping" if graceful else "cancelled")
            if graceful and was_leading:
                await self._release()

    # -- candidate ---------------------------------------------------------------------
    async def _campaign(self) -> None:
        try:
            record = await self.lease.read()
        except ClusterError as e:
            log.warning("leader election: %s", e)
            return
        step, self._observed = plan_step(
            record, self.identity, self._observed, self._clock(), self.lease_seconds
        )
        if step is Step.WAIT:
            return
        started = self._clock()
        mine = claimed(record, self.identity, self.lease_seconds, self._wall())
        try:
            if step is Step.CREATE:
                await self.lease.create(mine)
            else:
                await self.lease.replace(mine)
        except ClusterConflictError:
            return  # another candidate wrote first; read again next time
        except ClusterError as e:
            log.warning("leader election: %s", e)
            return
        self._renewed_at = started
        await self._start_leading()

    # -- leader ------------------------------------------------------------------------
    async def _renew(self) -> None:
        if self._work is not None and self._work.done():
            await self._stop_leading("the leader's work ended")
            await self._release()
            return
        started = self._clock()
        budget = self._renewed_at + self.renew_deadline - started
        try:
            # The whole renewal must finish before the deadline, or it does not count.
            async with asyncio.timeout(max(budget, 0.0)):
                record = await self.lease.read()
                still_mine = record is not None and record.holder == self.identity
                if record is not None and still_mine:
                    await self.lease.replace(
                        claimed(record, self.identity, self.lease_seconds, self._wall())
                    )
        except (ClusterError, TimeoutError) as e:
            log.warning("leader election: renew failed: %s", e or "timed out")
            if self._clock() - self._renewed_at >= self.renew_deadline:
                await self._stop_leading(f"could not renew within {self.renew_deadline:g}s")
            return
        if not still_mine:
            holder = record.holder if record is not None else None
            version = record.resource_version if record is not None else None
            self._observed = Observation(version, holder, started)
            await self._stop_leading(f"lease taken by {holder or 'nobody'}")
            return
        self._renewed_at = started

    async def _start_leading(self) -> None:
        self._leading = True
        log.info("leader election: %s now leads lease %s", self.identity, self.lease.name)
        if self._metrics is not None:
            self._metrics.set_leader(True)
        self._work = asyncio.create_task(self._on_started(), name="gepetto-leader-work")

    async def _stop_leading(self, reason: str) -> None:
        if not self._leading:
            return
        self._leading = False
        log.info("leader election: %s stops leading (%s)", self.identity, reason)
        if self._metrics is not None:
            self._metrics.set_leader(False)
        work, self._work = self._work, None
        if work is not None:
            work.cancel()
            (outcome,) = await asyncio.gather(work, return_exceptions=True)
            if isinstance(outcome, Exception):
                log.error("leader work failed", exc_info=outcome)
        if self._on_stopped is not None:
            try:
                await self._on_stopped()
            except Exception:  # a broken callback must not keep this replica from campaigning
                log.exception("on_stopped_leading failed")

    async def _release(self) -> None:
        """Give the lease up if it is still ours, so a standby need not wait for expiry."""
        try:
            record = await self.lease.read()
            if record is not None and record.holder == self.identity:
                await self.lease.replace(released(record, self._wall()))
                log.info("leader election: %s released lease %s", self.identity, self.lease.name)
        except ClusterError as e:  # the lease will expire instead
            log.warning("leader election: release failed: %s", e)

    async def _pause(self, stop_waiter: asyncio.Task[bool]) -> None:
        delay = self.renew_seconds
        if self._leading:  # never sleep past the point where we must have renewed
            left = self._renewed_at + self.renew_deadline - self._clock()
            delay = max(0.0, min(delay, left))
        waiters: set[asyncio.Future[Any]] = {stop_waiter}
        if self._work is not None:
            waiters.add(self._work)
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)


def elector_from_settings(
    settings: Settings,
    open_lease: Callable[[str, str], Lease],
    default_identity: str,
    on_started_leading: Callable[[], Coroutine[Any, Any, None]],
    on_stopped_leading: Callable[[], Awaitable[None]] | None = None,
    *,
    metrics: Metrics | None = None,
) -> LeaderElector | None:
    """The elector the settings ask for (lease in CHUTES_NAMESPACE, opened by
    `open_lease(namespace, name)`; GEPETTO_LEASE_IDENTITY or else `default_identity`), or None
    when GEPETTO_LEADER_ELECTION is off and this process should simply run the loops."""
    if not settings.leader_election:
        return None
    try:
        return LeaderElector(
            open_lease(settings.chutes_namespace, settings.lease_name),
            settings.lease_identity or default_identity,
            settings.lease_duration_seconds,
            settings.lease_renew_seconds,
            on_started_leading,
            on_stopped_leading,
            metrics=metrics,
        )
    except ValueError:
        raise ConfigError(
            "GEPETTO_LEASE_RENEW_SECONDS",
            "must be less than two thirds of GEPETTO_LEASE_DURATION_SECONDS",
        ) from None
