"""The batch planner: placements, opportunity cost, whitelist, back-off, limits, invariants."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gepetto_core.scheduling import (
    ChuteUtilization,
    FailureRecord,
    PlanPolicy,
    Reason,
    RoundPlan,
    Snapshot,
    plan_round,
)

from .conftest import NOW, Builder

B = Builder()


def run(snap: Snapshot, policy: PlanPolicy, seed: int = 0) -> RoundPlan:
    return plan_round(snap, policy, NOW, random.Random(seed))


def where(plan: RoundPlan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in plan.placements:
        out.setdefault(p.chute_id, []).append(p.server_id)
    return out


def test_places_many_instances_in_one_round(policy: PlanPolicy) -> None:
    chutes = tuple(B.chute(f"c{i}", allowance=2) for i in range(5))
    snap = Snapshot(chutes=chutes, servers=(B.server("s1"), B.server("s2")))
    plan = run(snap, policy)
    assert len(plan.placements) == 10
    assert all(d.placed == 2 for d in plan.decisions.values())


CHEAP_CHUTE_CASE = Snapshot(
    chutes=(
        # Needs only an A6000, pays a little more than the H200-only chute.
        B.chute("small", gpus=("a6000", "h200"), multiplier=0.5),
        B.chute("h200-only", gpus=("h200",), multiplier=0.45),
    ),
    servers=(
        # The H200 box is declared cheaper, so a plain value ranking would put `small` on it.
        B.server("h200-box", gpu_type="h200", gpus=1, cost=0.4),
        B.server("a6000-box", gpu_type="a6000", gpus=1, cost=0.5),
    ),
)


def test_cheap_chute_leaves_the_h200_to_the_chute_that_needs_it() -> None:
    elastic = PlanPolicy(cost_weight=1.0, max_deploys_per_round=None)
    plan = run(CHEAP_CHUTE_CASE, elastic)
    assert where(plan) == {"small": ["a6000-box"], "h200-only": ["h200-box"]}


def test_without_opportunity_cost_the_greedy_would_take_the_h200() -> None:
    # The same case with the opportunity-cost passes and repair switched off: this is the
    # failure the previous test guards against.
    naive = PlanPolicy(
        cost_weight=1.0, max_deploys_per_round=None, opportunity_passes=1, repair=False
    )
    plan = run(CHEAP_CHUTE_CASE, naive)
    assert where(plan) == {"small": ["h200-box"]}


def test_small_chutes_keep_the_empty_box_for_an_8_gpu_chute(policy: PlanPolicy) -> None:
    chutes = (
        B.chute("big", gpus=("pro_6000",), gpu_count=8, multiplier=4.0),
        *(B.chute(f"small{i}", gpus=("pro_6000",), multiplier=1.0) for i in range(4)),
    )
    servers = (
        B.server("eight", gpu_type="pro_6000", gpus=8, cost=1.0),
        B.server("four", gpu_type="pro_6000", gpus=4, cost=1.0),
    )
    plan = run(Snapshot(chutes=chutes, servers=servers), policy)
    placed = where(plan)
    assert placed["big"] == ["eight"]
    assert all(placed[f"small{i}"] == ["four"] for i in range(4))


def test_whitelisted_chute_is_preferred(policy: PlanPolicy) -> None:
    chutes = (B.chute("rich", multiplier=3.0), B.chute("favourite", multiplier=1.0))
    servers = (B.server("s1", gpus=1),)
    plain = run(Snapshot(chutes=chutes, servers=servers), policy)
    assert where(plain) == {"rich": ["s1"]}
    listed = run(
        Snapshot(chutes=chutes, servers=servers, whitelist=frozenset({"favourite"})), policy
    )
    assert where(listed) == {"favourite": ["s1"]}
    assert listed.decisions["rich"].rejection is not None
    assert listed.decisions["rich"].rejection.reason is Reason.OUTBID


def test_chute_in_backoff_is_skipped_with_the_reason(policy: PlanPolicy) -> None:
    failures = tuple(
        FailureRecord(
            f"d{i}",
            "flaky",
            f"s{i}",
            "a100",
            NOW - timedelta(minutes=30),
            NOW - timedelta(minutes=25),
            "crash",
        )
        for i in (1, 2)
    )
    chutes = (B.chute("flaky", multiplier=5.0), B.chute("steady"))
    servers = (B.server("s1", gpus=1), B.server("s2", gpus=1))
    plan = run(Snapshot(chutes=chutes, servers=servers, failures=failures), policy)
    assert "flaky" not in where(plan)
    rej = plan.decisions["flaky"].rejection
    assert rej is not None and rej.reason is Reason.CHUTE_BACKOFF
    assert "back-off until" in rej.detail


def test_pair_backoff_sends_the_chute_to_another_server(policy: PlanPolicy) -> None:
    failure = FailureRecord(
        "d1", "c1", "s1", "a100", NOW - timedelta(minutes=20), NOW - timedelta(minutes=15), "crash"
    )
    servers = (B.server("s1", cost=0.5), B.server("s2", cost=2.0))
    plan = run(Snapshot(chutes=(B.chute("c1"),), servers=servers, failures=(failure,)), policy)
    assert where(plan) == {"c1": ["s2"]}


def test_loss_making_placement_is_never_made() -> None:
    elastic = PlanPolicy(cost_weight=1.0, dollars_per_multiplier_hour=4.0)
    # 4 $/mult-h * 0.1 multiplier earns ~0.4 $/h; the GPU costs 1 $/h.
    snap = Snapshot(chutes=(B.chute("poor", multiplier=0.1),), servers=(B.server("s1"),))
    plan = run(snap, elastic)
    assert plan.placements == ()
    rej = plan.decisions["poor"].rejection
    assert rej is not None and rej.reason is Reason.UNPROFITABLE


def test_round_limit_defers_the_rest(policy: PlanPolicy) -> None:
    chutes = tuple(B.chute(f"c{i}", multiplier=1.0 + i) for i in range(5))
    plan = run(
        Snapshot(chutes=chutes, servers=(B.server("s1"),)), replace(policy, max_deploys_per_round=2)
    )
    assert sorted(where(plan)) == ["c3", "c4"]  # the two most valuable
    rej = plan.decisions["c0"].rejection
    assert rej is not None and rej.reason is Reason.ROUND_LIMIT


def test_job_is_placed_first_even_when_not_scalable(policy: PlanPolicy) -> None:
    job_chute = B.chute(
        "jobby", multiplier=0.5, job_ids=("job-1",), utilization=ChuteUtilization(scalable=False)
    )
    snap = Snapshot(
        chutes=(job_chute, B.chute("rich", multiplier=9.0)), servers=(B.server("s1", gpus=1),)
    )
    plan = run(snap, policy)
    assert [(p.chute_id, p.job_id) for p in plan.placements] == [("jobby", "job-1")]


def test_same_rng_same_plan(policy: PlanPolicy) -> None:
    chutes = tuple(B.chute(f"c{i}", allowance=3) for i in range(6))
    servers = tuple(B.server(f"s{i}", gpus=2) for i in range(4))
    snap = Snapshot(chutes=chutes, servers=servers)
    assert run(snap, policy, seed=7).placements == run(snap, policy, seed=7).placements


# --- property: never over-allocate, always respect allowances and compatibility -------------

GPU_TYPES = ["a100", "h200", "a6000"]


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    n_servers = draw(st.integers(1, 6))
    servers = []
    deployments = []
    for i in range(n_servers):
        size = draw(st.sampled_from([1, 2, 4, 8]))
        used_n = draw(st.integers(0, size))
        unverified = draw(st.integers(0, size - used_n))
        used = {k: f"old{i}-{k}" for k in range(used_n)}
        srv = B.server(
            f"s{i}",
            gpu_type=draw(st.sampled_from(GPU_TYPES)),
            gpus=size,
            cost=draw(st.floats(0.2, 3.0)),
            used=used,
            locked=draw(st.booleans()) and draw(st.booleans()),
            is_tee=draw(st.booleans()) and draw(st.booleans()),
        )
        gpus = tuple(
            replace(g, verified=False) if used_n <= k < used_n + unverified else g
            for k, g in enumerate(srv.gpus)
        )
        servers.append(replace(srv, gpus=gpus))
        for k in range(used_n):
            deployments.append(
                B.deployment(
                    f"old{i}-{k}",
                    "c0",
                    f"s{i}",
                    (k,),
                    activated_minutes_ago=draw(st.sampled_from([None, 90.0])),
                )
            )
    chutes = []
    for j in range(draw(st.integers(1, 8))):
        chutes.append(
            B.chute(
                f"c{j}",
                gpus=tuple(draw(st.sets(st.sampled_from(GPU_TYPES), min_size=1))),
                gpu_count=draw(st.sampled_from([1, 1, 2, 4, 8])),
                multiplier=draw(st.floats(0.05, 5.0)),
                allowance=draw(st.integers(0, 4)),
                instance_count=draw(st.integers(0, 6)),
                tee=draw(st.booleans()) and draw(st.booleans()),
            )
        )
    return Snapshot(chutes=tuple(chutes), servers=tuple(servers), deployments=tuple(deployments))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snap=snapshots(),
    kappa=st.sampled_from([0.0, 1.0]),
    limit=st.sampled_from([None, 2]),
)
def test_plan_never_overallocates_and_respects_allowances(
    snap: Snapshot, kappa: float, limit: int | None
) -> None:
    from gepetto_core.scheduling.rules import allowance

    policy = PlanPolicy(cost_weight=kappa, max_pulls_per_server=limit)
    plan = run(snap, policy)
    used = Counter(g for p in plan.placements for g in p.gpu_ids)
    assert all(n == 1 for n in used.values()), "a GPU was given out twice"
    new_per_server: Counter[str] = Counter()
    for p in plan.placements:
        chute = snap.chute_by_id[p.chute_id]
        server = snap.server_by_id[p.server_id]
        free = set(server.free_gpu_ids())
        assert len(p.gpu_ids) == chute.gpu_count
        assert set(p.gpu_ids) <= free, "took a busy, unverified or foreign GPU"
        assert server.gpu_type in chute.supported_gpus and server.is_tee == chute.tee
        assert not server.locked
        assert p.value > policy.min_value
        new_per_server[p.server_id] += 1
    per_chute = Counter(p.chute_id for p in plan.placements if p.job_id is None)
    for chute_id, n in per_chute.items():
        assert n <= allowance(snap.chute_by_id[chute_id], snap)[0]
    assert len(plan.placements) <= (policy.max_deploys_per_round or 10**9)
    if limit is not None:
        pending = Counter(d.server_id for d in snap.deployments if d.pending)
        for sid, n in new_per_server.items():
            assert n + pending[sid] <= limit


def test_recently_failed_chute_starts_one_instance_at_a_time(policy: PlanPolicy) -> None:
    failure = FailureRecord(
        "d1",
        "shaky",
        "old",
        "a100",
        NOW - timedelta(minutes=20),
        NOW - timedelta(minutes=15),
        "crash",
    )
    snap = Snapshot(
        chutes=(B.chute("shaky", allowance=3),), servers=(B.server("s1"),), failures=(failure,)
    )
    plan = run(snap, policy)
    assert len(plan.placements) == 1
    pending = B.deployment("d2", "shaky", "s1", (0,), activated_minutes_ago=None)
    busy = replace(snap, deployments=(pending,))
    rej = run(busy, policy).decisions["shaky"].rejection
    assert rej is not None and rej.reason is Reason.PROBATION


def test_fenced_server_takes_one_probe_at_a_time_when_half_open(policy: PlanPolicy) -> None:
    """A server in back-off: closed, it takes nothing; half-open, one deployment at a time."""
    chutes = tuple(B.chute(f"want{i}", multiplier=2.0) for i in range(3))
    snap = Snapshot(
        chutes=chutes, servers=(B.server("bad", gpus=4),), failures=B.early_deaths("bad")
    )

    closed = run(snap, replace(policy, backoff=replace(policy.backoff, fenced_server_probes=0)))
    assert not closed.placements
    rej = closed.decisions["want0"].rejection
    assert rej is not None and rej.reason is Reason.SERVER_BACKOFF

    half_open = policy  # the default: one probe
    assert policy.backoff.fenced_server_probes == 1
    assert [p.server_id for p in run(snap, half_open).placements] == ["bad"]

    probing = B.deployment("d9", "want0", "bad", (0,), activated_minutes_ago=None)
    server = B.server("bad", gpus=4, used={0: "d9"})
    busy = replace(snap, servers=(server,), deployments=(probing,))
    plan = run(busy, half_open)
    assert not plan.placements
    rej = plan.decisions["want1"].rejection
    assert rej is not None and rej.reason is Reason.SERVER_BACKOFF
    assert "probing 1 deployment(s) at a time, 1 still starting" in rej.detail
