"""#26: the autoscaler records the fleet through its history hook, on real PostgreSQL and the
sandboxes: one row per round at most once a minute (by the round's clock), deploys counted,
the GPUs it filled shown as starting with their chute's name."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from gepetto_core.adapters.pg_history import PgHistory
from gepetto_core.models.history import BUSY_STATES, SlotState
from gepetto_core.scheduling.snapshot import Snapshot
from gepetto_core.services.autoscaler import Autoscaler
from gepetto_core.services.fleet_history import FleetHistoryRecorder
from gepetto_core.services.planning_input import load_snapshot, plan_policy

from .conftest import Miner


async def test_rounds_leave_a_history_the_report_can_read(miner: Miner) -> None:
    rt = miner.rt

    async def build() -> Snapshot:
        await rt.sync.sync_all()
        loaded = await load_snapshot(rt.inventory, rt.state, rt.sync.snapshots, miner.clock())
        return loaded.snapshot

    policy = replace(plan_policy(miner.settings), max_deploys_per_round=None)
    history = PgHistory(rt.pool)
    recorder = FleetHistoryRecorder(history, policy, build_snapshot=build)
    scaler = Autoscaler(
        rt.state, rt.deployer, rt.validators, build, policy=policy, clock=miner.clock,
        seed=1, history=recorder, synced=lambda: rt.sync.snapshots,
    )  # fmt: skip
    start = miner.clock()
    first = await scaler.run_round()
    deployed = first.count("deployed")
    assert deployed >= 1
    await scaler.run_round()  # same minute: not recorded, its deploys carried over
    miner.clock.advance(minutes=1)
    await rt.state.set_autoscaler_mode("paused", "U-test", miner.clock() + timedelta(hours=1))
    await scaler.run_round()  # paused: the recorder builds its own snapshot

    rows = await history.totals(start - timedelta(minutes=1), miner.clock() + timedelta(minutes=1))
    assert [r.mode for r in rows] == ["active", "paused"]
    assert rows[0].deploys == deployed
    latest = await history.latest()
    assert latest is not None and latest.mode == "paused"
    gpus = sum(node.gpu_count for node in miner.world.fleet)
    assert latest.gpus == gpus
    busy = sum(latest.count(s) for s in BUSY_STATES)
    assert busy >= deployed
    names = {run.chute for s in latest.servers for run in s.runs if run.state in BUSY_STATES}
    assert None not in names and names
    assert latest.count(SlotState.IDLE) == 0 or "autoscaler paused" in latest.idle_by_reason()
