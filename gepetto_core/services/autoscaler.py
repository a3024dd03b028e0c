"""The autoscaler loop: plan a round with the pure planner, then apply it through the deployer.

Runs every interval and when woken by an event (instance deleted, bounty, chute created, GPU
verified). Its mode lives in PostgreSQL: `active` (plan and act), `shadow` (plan and report, act
on nothing), `paused` (until a time, then active again). A round that fails is logged and the
loop goes on. At most `max_in_flight` deploy calls run at once; the planner already limits the
placements per round and, when configured, the pending pulls per server.

Preemption is carried out in the order the plan gives: the launch token first (so a 423 or a
job another miner claimed costs us nothing), then the victims, then the deploy.

A validator job gets its extra ports and disk from the validator's synced lists (the chute's
job definitions and the job's row), through `services.job_launch` as the `job_created`
handler does, so a job runs the same whichever path started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gepetto_core.clock import utcnow
from gepetto_core.errors import GepettoError, NoCapacityError, ValidatorError
from gepetto_core.ops.metrics import METRICS
from gepetto_core.scheduling.plan import Placement, Preemption, RoundPlan
from gepetto_core.scheduling.planner import plan_round
from gepetto_core.scheduling.policy import PlanPolicy
from gepetto_core.scheduling.snapshot import PreemptionRecord, Snapshot
from gepetto_core.services.deployer import Deployer, DeployRequest, refuses_launch
from gepetto_core.services.job_launch import JobLaunch, synced_job_launch
from gepetto_core.services.ports import StateStore, ValidatorApi
from gepetto_core.services.sync import ValidatorSnapshot

log = logging.getLogger(__name__)

SnapshotBuilder = Callable[[], Awaitable[Snapshot]]
# The validators' latest synced lists by hotkey (`SyncService.snapshots`), read when placing.
SyncedLists = Callable[[], Mapping[str, ValidatorSnapshot]]


@dataclass(frozen=True)
class Outcome:
    placement: Placement
    # "deployed" | "no capacity" | "failed" | "preempted and deployed" | "deferred" (a victim's
    # delete preflight vetoed its removal: nothing deployed)
    result: str
    detail: str = ""
    deployment_id: str | None = None


@dataclass(frozen=True)
class RoundReport:
    started_at: datetime
    mode: str
    plan: RoundPlan | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None
    plan_seconds: float = 0.0
    # The planner's input this round (None when paused): the fleet history reads it (#26).
    snapshot: Snapshot | None = field(default=None, repr=False, compare=False)

    def count(self, result: str) -> int:
        return sum(1 for o in self.outcomes if o.result == result)


RoundCallback = Callable[[RoundReport], Awaitable[None]]


class RoundHistory(Protocol):
    """Told about every round (`services.fleet_history.FleetHistoryRecorder`, #26)."""

    async def after_round(self, report: RoundReport) -> object: ...


class Autoscaler:
    def __init__(
        self,
        state: StateStore,
        deployer: Deployer,
        validators: Mapping[str, ValidatorApi],
        build_snapshot: SnapshotBuilder,
        *,
        policy: PlanPolicy | None = None,
        interval: float = 60.0,
        max_in_flight: int = 8,
        clock: Callable[[], datetime] = utcnow,
        seed: int | None = None,
        on_round: RoundCallback | None = None,
        history: RoundHistory | None = None,
        synced: SyncedLists,
    ) -> None:
        self._state = state
        self._deployer = deployer
        self._validators = validators
        self._build_snapshot = build_snapshot
        self.policy = policy or PlanPolicy()
        self._interval = interval
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._clock = clock
        self._rng = random.Random(seed)
        self._on_round = on_round
        self._history = history
        self._synced = synced
        self._wake = asyncio.Event()
        self._round_lock = asyncio.Lock()
        # The planner's stabilisation state: preemptions proposed last round, and recent ones
        # for the budget. Losing them on restart only delays a preemption by a round.
        self._proposed: frozenset[tuple[str, str]] = frozenset()
        self._recent: list[PreemptionRecord] = []
        self.last_report: RoundReport | None = None

    def wake(self, why: str) -> None:
        log.debug("autoscaler woken: %s", why)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            report = await self.run_round()
            if report.error:
                log.warning("autoscaler round failed: %s", report.error)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await _first(stop.wait(), self._wake.wait())

    async def run_round(self) -> RoundReport:
        async with self._round_lock:
            started = self._clock()
            try:
                with METRICS.time_loop("autoscale"):
                    report = await self._round(started)
            except GepettoError as e:
                report = RoundReport(started, "error", error=str(e))
            except Exception as e:
                # A bug: logged in full; the loop goes on (see services/loops.py).
                log.exception("autoscaler round failed unexpectedly")
                report = RoundReport(started, "error", error=f"internal error: {type(e).__name__}")
            self.last_report = report
            for outcome in report.outcomes:
                METRICS.decisions.labels(kind="autoscale", outcome=outcome.result).inc()
                METRICS.deploys.labels(outcome=outcome.result.replace(" ", "_")).inc()
            if self._history is not None:  # #26: fleet history, rate-limited by the round's time
                await self._history.after_round(report)
            if self._on_round is not None:
                await self._on_round(report)
            return report

    async def _mode(self, now: datetime) -> str:
        mode = await self._state.get_autoscaler_mode()
        if mode.mode == "paused" and mode.paused_until is not None and now >= mode.paused_until:
            await self._state.set_autoscaler_mode("active", "autoscaler (pause expired)")
            return "active"
        return mode.mode

    async def _round(self, started: datetime) -> RoundReport:
        mode = await self._mode(started)
        if mode == "paused":
            return RoundReport(started, mode)
        snapshot = await self._build_snapshot()
        snapshot = _with_history(snapshot, self._proposed, self._recent)
        t0 = time.perf_counter()
        # Off the event loop: a large fleet plans for a few hundred ms, which would otherwise
        # delay Slack acks and lease renewals (rounds are serialised, so the rng is not shared).
        plan = await asyncio.to_thread(plan_round, snapshot, self.policy, started, self._rng)
        plan_seconds = time.perf_counter() - t0
        self._proposed = frozenset(
            (p.placement.chute_id, p.placement.server_id)
            for p in plan.preemptions
            if not p.confirmed
        )
        if mode == "shadow":
            return RoundReport(started, mode, plan, plan_seconds=plan_seconds, snapshot=snapshot)
        outcomes = await asyncio.gather(
            *(self._place(p) for p in plan.placements),
            *(self._preempt(p) for p in plan.preemptions if p.confirmed),
        )
        return RoundReport(
            started, mode, plan, list(outcomes), plan_seconds=plan_seconds, snapshot=snapshot
        )

    async def _place(self, placement: Placement) -> Outcome:
        async with self._in_flight:
            try:
                request = await self._request(placement)
            except GepettoError as e:
                return Outcome(placement, "failed", f"not started: {e}")
            return await self._deploy(request, placement, "deployed")

    async def _request(self, placement: Placement) -> DeployRequest:
        """The deploy request for a placement; a job's carries its ports and disk."""
        if not placement.job_id:
            return DeployRequest(placement.chute_id, placement.server_id, requested_by="autoscaler")
        launch = await self._job_launch(placement, placement.job_id)
        return DeployRequest(
            placement.chute_id,
            placement.server_id,
            job_id=placement.job_id,
            job_ports=launch.ports,
            disk_gb=launch.disk_gb,
            requested_by="autoscaler",
        )

    async def _job_launch(self, placement: Placement, job_id: str) -> JobLaunch:
        server = await self._deployer.server(placement.server_id)
        remote = self._synced().get(server.validator)
        return synced_job_launch(remote, placement.chute_id, job_id)

    async def _deploy(self, request: DeployRequest, placement: Placement, ok: str) -> Outcome:
        audit_id = await self._state.add_audit(
            actor="autoscaler",
            source="autoscaler",
            verb="deploy",
            arguments={
                "chute_id": placement.chute_id,
                "server_id": placement.server_id,
                "value": round(placement.value, 4),
                "reason": placement.reason,
            },
            allowed=True,
        )
        try:
            result = await self._deployer.deploy(request)
        except NoCapacityError as e:
            await self._state.finish_audit(audit_id, f"no capacity: {e}")
            return Outcome(placement, "no capacity", str(e))
        except GepettoError as e:
            await self._state.finish_audit(audit_id, f"failed: {e}")
            if request.job_id:
                await self._release(placement, request.job_id)
            return Outcome(placement, "failed", str(e))
        await self._state.finish_audit(audit_id, ok)
        return Outcome(placement, ok, deployment_id=result.deployment.deployment_id)

    async def _release(self, placement: Placement, job_id: str) -> None:
        """A job we could not run goes back to the other miners."""
        with contextlib.suppress(GepettoError):
            await (await self._validator_for(placement)).release_job(job_id)

    async def _preempt(self, preemption: Preemption) -> Outcome:
        placement = preemption.placement
        async with self._in_flight:
            validator = await self._validator_for(placement)
            try:
                request = await self._request(placement)
            except GepettoError as e:
                return Outcome(placement, "failed", f"preemption not started: {e}")
            try:
                # The token first: if the validator says no, nothing is removed.
                prepared = await validator.launch_config(placement.chute_id, placement.job_id)
            except GepettoError as e:
                if isinstance(e, ValidatorError) and refuses_launch(e):
                    await self._deployer.record_launch_refusal(
                        placement.chute_id, placement.server_id, e, job_id=placement.job_id
                    )
                return Outcome(placement, "no capacity", f"preemption not started: {e}")
            deferred = await self._remove_victims(preemption)
            if deferred is not None:
                if placement.job_id:
                    await self._release(placement, placement.job_id)
                return Outcome(placement, "deferred", deferred)
            request = dataclasses.replace(request, prepared=prepared)
            return await self._deploy(request, placement, "preempted and deployed")

    async def _remove_victims(self, preemption: Preemption) -> str | None:
        """Undeploy the victims, once no delete preflight vetoes any (their GPUs are needed
        together); why not, when one is held back (its GPUs stay taken: no deploy follows)."""
        server_id = preemption.placement.server_id
        for victim in preemption.victims:
            veto = await self._deployer.preflight(victim, server_id)
            if veto is not None:
                return f"preemption not started: {victim}: {veto}"
        held: list[str] = []
        for victim in preemption.victims:
            result = await self._deployer.undeploy(victim, f"preempted: {preemption.reason}")
            if result.deferred is not None:
                held.append(f"{victim}: {result.deferred}")
        self._recent.append(PreemptionRecord(server_id, self._clock()))
        return f"victims not removed: {'; '.join(held)}" if held else None

    async def _validator_for(self, placement: Placement) -> ValidatorApi:
        server = await self._deployer.server(placement.server_id)
        return self._validators[server.validator]


def _with_history(
    snapshot: Snapshot, proposed: frozenset[tuple[str, str]], recent: list[PreemptionRecord]
) -> Snapshot:
    if not proposed and not recent:
        return snapshot
    return dataclasses.replace(
        snapshot,
        recent_preemptions=(*snapshot.recent_preemptions, *recent),
        proposed_preemptions=snapshot.proposed_preemptions | proposed,
    )


async def _first(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
