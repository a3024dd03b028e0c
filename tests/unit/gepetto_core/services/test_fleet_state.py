"""`fleet_snapshot`: every GPU's state and reason from planner input + plan (pure)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from gepetto_core.models.history import SlotState
from gepetto_core.scheduling import (
    ChuteUtilization,
    ChuteView,
    DeploymentView,
    FailureRecord,
    GpuView,
    PlanPolicy,
    ServerView,
    Snapshot,
    plan_round,
)
from gepetto_core.services.fleet_state import NO_CANDIDATE, PAUSED, UNVERIFIED, fleet_snapshot

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
VAL = "5val"


def _chute(chute_id: str, multiplier: float = 2.0, allowance: int = 0) -> ChuteView:
    return ChuteView(
        chute_id=chute_id,
        name=f"name-{chute_id}",
        validator=VAL,
        gpu_count=1,
        supported_gpus=frozenset({"h100"}),
        version="v1",
        effective_compute_multiplier=multiplier,
        utilization=ChuteUtilization(scale_allowance=allowance),
    )


def _server(
    server_id: str, used: dict[int, str] | None = None, gpus: int = 8, **kw: object
) -> ServerView:
    used = used or {}
    unverified = kw.pop("unverified", ())
    views = tuple(
        GpuView(
            gpu_id=f"{server_id}-g{i}",
            deployment_id=used.get(i),
            verified=i not in unverified,  # type: ignore[operator]
        )
        for i in range(gpus)
    )
    return ServerView(
        server_id=server_id,
        name=f"node-{server_id}",
        validator=VAL,
        gpu_type="h100",
        hourly_cost=2.0,
        gpus=views,
        disk_free_gb=500.0,
        **kw,  # type: ignore[arg-type]
    )


def _deployment(
    deployment_id: str, chute_id: str, server_id: str, gpus: range, *, active: bool
) -> DeploymentView:
    return DeploymentView(
        deployment_id=deployment_id,
        chute_id=chute_id,
        server_id=server_id,
        gpu_ids=tuple(f"{server_id}-g{i}" for i in gpus),
        created_at=NOW - timedelta(minutes=5),
        active=active,
        compute_multiplier=3.0 if active else None,
    )


def _failure(chute_id: str, server_id: str, minutes_ago: int) -> FailureRecord:
    created = NOW - timedelta(minutes=minutes_ago)
    return FailureRecord(
        deployment_id=f"f-{chute_id}-{server_id}-{minutes_ago}",
        chute_id=chute_id,
        server_id=server_id,
        gpu_type="h100",
        created_at=created,
        ended_at=created + timedelta(minutes=3),
    )


def _fleet_input() -> Snapshot:
    used_a = {
        0: "d-run",
        1: "d-run",
        2: "d-run",
        3: "d-run",
        4: "d-start",
        5: "d-start",
        6: "d-crash",
    }
    return Snapshot(
        chutes=(_chute("c-run"), _chute("c-start"), _chute("c-crash")),
        servers=(
            _server("a", used_a),
            _server("b", locked=True),
            _server("c", gpus=4),
            _server("d", gpus=2, unverified=(1,)),
        ),
        deployments=(
            _deployment("d-run", "c-run", "a", range(0, 4), active=True),
            _deployment("d-start", "c-start", "a", range(4, 6), active=False),
            _deployment("d-crash", "c-crash", "a", range(6, 7), active=False),
        ),
        failures=(
            # c-crash failed on another server: it is starting again after a crash.
            _failure("c-crash", "d", 40),
            # three chutes failed on server c within 2 h: c is in server back-off.
            _failure("x1", "c", 50),
            _failure("x2", "c", 40),
            _failure("x3", "c", 30),
        ),
    )


def test_every_gpu_gets_its_state_chute_and_reason() -> None:
    snapshot = _fleet_input()
    policy = PlanPolicy()
    plan = plan_round(snapshot, policy, NOW, random.Random(1))
    fleet = fleet_snapshot(snapshot, plan, policy, NOW, mode="active", deploys=3, failed_deploys=1)
    by_name = {s.name: s for s in fleet.servers}
    a = by_name["node-a"]
    assert [(r.state, r.count, r.chute) for r in a.runs[:3]] == [
        (SlotState.RUNNING, 4, "name-c-run"),
        (SlotState.STARTING, 2, "name-c-start"),
        (SlotState.CRASHING, 1, "name-c-crash"),
    ]
    assert [(r.state, r.count, r.reason) for r in a.runs[3:]] == [(SlotState.IDLE, 1, NO_CANDIDATE)]
    assert [(r.state, r.count, r.reason) for r in by_name["node-b"].runs] == [
        (SlotState.LOCKED, 8, "server_locked")
    ]
    assert [(r.state, r.count) for r in by_name["node-c"].runs] == [(SlotState.BACKED_OFF, 4)]
    d_runs = {(r.state, r.reason): r.count for r in by_name["node-d"].runs}
    assert d_runs == {(SlotState.IDLE, NO_CANDIDATE): 1, (SlotState.IDLE, UNVERIFIED): 1}
    assert fleet.gpus == 8 + 8 + 4 + 2
    # Earnings: the one active instance at its own multiplier (3.0) x $4 per multiplier-hour.
    assert fleet.earning_per_hour == 3.0 * policy.dollars_per_multiplier_hour
    assert fleet.cost_per_hour == 2.0 * 22
    assert (fleet.deploys, fleet.failed_deploys) == (3, 1)
    assert fleet.idle_by_reason() == {
        NO_CANDIDATE: 2,
        UNVERIFIED: 1,
        "server_locked": 8,
        "server_backoff": 4,
    }


def test_without_a_plan_idle_gpus_say_the_autoscaler_is_paused() -> None:
    snapshot = _fleet_input()
    fleet = fleet_snapshot(snapshot, None, PlanPolicy(), NOW, mode="paused")
    a = next(s for s in fleet.servers if s.name == "node-a")
    assert a.runs[-1].reason == PAUSED
    assert fleet.expected_value == 0.0


def test_gpus_the_plan_fills_are_marked_as_being_placed() -> None:
    snapshot = Snapshot(chutes=(_chute("c-new", allowance=3),), servers=(_server("e", gpus=2),))
    policy = PlanPolicy()
    plan = plan_round(snapshot, policy, NOW, random.Random(1))
    assert plan.placements, "the planner places the chute (precondition)"
    fleet = fleet_snapshot(snapshot, plan, policy, NOW, mode="active")
    reasons = {r.reason for r in fleet.servers[0].runs}
    assert "placing" in reasons
    shadow = fleet_snapshot(snapshot, plan, policy, NOW, mode="shadow")
    assert "would place (shadow)" in {r.reason for r in shadow.servers[0].runs}
    assert fleet.expected_value == round(plan.total_value, 4) > 0
