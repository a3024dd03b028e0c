"""How failures enter the value and the rules: a failed start costs the GPU time it
held plus a per-deploy charge, not a whole life; a chute that keeps failing is excluded; sunk-cost
searches take the most reliable server first."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from gepetto_core.scheduling import (
    FailureRecord,
    PlanPolicy,
    Reason,
    ReliabilityPolicy,
    RoundPlan,
    Snapshot,
    plan_round,
)
from gepetto_core.scheduling.reliability import reliability
from gepetto_core.scheduling.value import failure_charge, success_share

from .conftest import NOW, Builder

B = Builder()


def record(
    chute_id: str, server_id: str, k: int, failed: bool, hours_ago: float = 3.0
) -> FailureRecord:
    created = NOW - timedelta(hours=hours_ago)
    lived = timedelta(minutes=5) if failed else timedelta(hours=2)
    return FailureRecord(
        deployment_id=f"d-{chute_id}-{server_id}-{k}",
        chute_id=chute_id,
        server_id=server_id,
        gpu_type="a100",
        created_at=created,
        ended_at=created + lived,
        reason="crash" if failed else "downscaled",
        counted=failed,
    )


def test_lost_time_share_barely_discounts_a_chute_that_fails_sometimes(
    policy: PlanPolicy,
) -> None:
    chute = B.chute("c")
    lost_time = success_share(0.6, chute, policy)
    by_probability = replace(policy.reliability, charge="probability")
    as_probability = success_share(0.6, chute, replace(policy, reliability=by_probability))
    assert as_probability == 0.6
    # 18 h of expected life against 0.7 h lost per failed 1-GPU start.
    assert 0.96 < lost_time < 0.98
    assert success_share(1.0, chute, policy) == 1.0
    assert success_share(0.0, chute, policy) == 0.0


def test_failure_charge_is_per_instance_and_falls_with_reliability(policy: PlanPolicy) -> None:
    assert failure_charge(1.0, policy, 1.0) == 0.0
    assert failure_charge(0.5, policy, 1.0) > failure_charge(0.9, policy, 1.0) > 0.0
    assert failure_charge(0.5, replace(policy, failed_deploy_cost=0.0), 1.0) == 0.0


def test_failure_charge_is_at_most_a_few_hours_of_the_instances_pay(policy: PlanPolicy) -> None:
    life_h = policy.expected_lifetime.total_seconds() / 3600.0
    flat = policy.failed_deploy_cost / life_h
    cap_hours = policy.failed_deploy_cap_hours
    assert cap_hours is not None and cap_hours < 28
    # A chute of multiplier 2.75 pays $11 an hour: the flat $10 is less than an hour of that.
    assert failure_charge(0.0, policy, 2.75) == flat
    # A 4090 chute (multiplier 0.089) pays $0.36 per hour: its charge is a few hours of that,
    # not the 28 h that $10 would be.
    capped = cap_hours * policy.dollars_per_multiplier_hour * 0.089 / life_h
    assert failure_charge(0.0, policy, 0.089) == capped < flat
    uncapped = replace(policy, failed_deploy_cap_hours=None)
    assert failure_charge(0.0, uncapped, 0.089) == flat


def test_a_cheap_chute_that_failed_once_is_judged_by_its_own_pay(policy: PlanPolicy) -> None:
    """One 4090 GPU; a chute paying 12 % more that died once on it three hours ago, and a
    spotless one. Both risk a few hours of a 4090's pay, so the better payer gets the GPU; a flat
    $10 charge (28 h of that pay) would hand it to the spotless one."""
    flaky = B.chute("flaky", multiplier=0.1)
    spotless = B.chute("spotless", multiplier=0.089)
    snap = Snapshot(
        chutes=(flaky, spotless),
        servers=(B.server("s1", gpus=1),),
        failures=(record("flaky", "s1", 0, failed=True),),
    )

    def placed(pol: PlanPolicy) -> list[str]:
        return [p.chute_id for p in plan_round(snap, pol, NOW, random.Random(0)).placements]

    assert placed(policy) == ["flaky"]
    assert placed(replace(policy, failed_deploy_cap_hours=None)) == ["spotless"]


def _two_chutes_one_gpu(policy: PlanPolicy) -> str:
    """A chute paying 18 % more that failed twice (and ran once) vs a spotless one: one GPU."""
    better = B.chute("better", multiplier=0.72)
    plain = B.chute("plain", multiplier=0.611)
    server = B.server("s1", gpus=1)
    others = [B.server(f"o{i}", gpus=1) for i in range(3)]
    history = (
        record("better", "o0", 0, failed=True),
        record("better", "o1", 1, failed=True, hours_ago=5),
        record("better", "o2", 2, failed=False, hours_ago=8),
    )
    # Only s1 has a free GPU: the others are fenced off by being locked.
    snap = Snapshot(
        chutes=(better, plain),
        servers=(server, *(replace(o, locked=True) for o in others)),
        failures=history,
    )
    [p] = plan_round(snap, policy, NOW, random.Random(0)).placements
    return p.chute_id


def test_two_failures_no_longer_outweigh_a_higher_multiplier(policy: PlanPolicy) -> None:
    assert _two_chutes_one_gpu(policy) == "better"
    # Charged as a probability (the previous model), the failures decided it.
    as_probability = replace(
        policy, reliability=replace(policy.reliability, charge="probability", exclude_below=0.0)
    )
    assert _two_chutes_one_gpu(as_probability) == "plain"


def test_a_chute_failing_again_and_again_is_excluded(policy: PlanPolicy) -> None:
    chute = B.chute("flaky", allowance=2)
    servers = tuple(B.server(f"s{i}", gpus=1) for i in range(4))
    # Three early deaths 3-5 h ago on three servers: every back-off window has closed again,
    # so only the survival estimate (about 0.59 < 0.65) keeps the chute out.
    failures = tuple(record("flaky", f"s{i}", i, failed=True, hours_ago=3 + i) for i in range(3))

    def plan_with(records: tuple[FailureRecord, ...], pol: PlanPolicy = policy) -> RoundPlan:
        snap = Snapshot(chutes=(chute,), servers=servers, failures=records)
        return plan_round(snap, pol, NOW, random.Random(0))

    plan = plan_with(failures)
    decision = plan.decisions["flaky"]
    assert plan.placements == ()
    assert decision.rejection is not None and decision.rejection.reason is Reason.UNRELIABLE
    # Three healthy runs since then outweigh them.
    healed = failures + tuple(
        record("flaky", "s3", 3 + k, failed=False, hours_ago=2.5 + 0.1 * k) for k in range(3)
    )
    assert plan_with(healed).placements
    off = replace(policy, reliability=ReliabilityPolicy(exclude_below=0.0))
    assert plan_with(failures, off).placements


def _one_box(policy: PlanPolicy) -> list[str]:
    """One empty 8-GPU box: an 8-GPU chute, or eight 1-GPU chutes paying 0.5 % more per GPU
    (all with the same start-up time, so only the per-deploy charge tells them apart)."""
    big = B.chute("big", gpu_count=8, multiplier=8.0, startup_minutes=40.0)
    small = tuple(B.chute(f"small{i}", multiplier=1.005, startup_minutes=40.0) for i in range(8))
    snap = Snapshot(chutes=(big, *small), servers=(B.server("s1", gpus=8),))
    plan = plan_round(snap, policy, NOW, random.Random(0))
    return sorted({p.chute_id for p in plan.placements})


def test_one_big_deploy_beats_eight_small_ones_that_can_each_fail(policy: PlanPolicy) -> None:
    assert _one_box(policy) == ["big"]
    assert "big" not in _one_box(replace(policy, failed_deploy_cost=0.0))


def _unreliable_box(policy: PlanPolicy) -> set[tuple[str, str]]:
    """Two empty 8-GPU boxes, one whose instances of three chutes died 10 h ago (its back-off
    is over; its reliability estimate is not): an 8-GPU chute paying 0.1 % more per GPU than
    eight 1-GPU instances of another, same start-up. Which chute goes where?"""
    big = B.chute("big", gpu_count=8, multiplier=8.008, startup_minutes=40.0)
    small = B.chute("small", multiplier=1.0, startup_minutes=40.0, allowance=8)
    history = tuple(record(f"x{k}", "bad", k, failed=True, hours_ago=10) for k in range(3))
    snap = Snapshot(
        chutes=(big, small),
        servers=(B.server("good", gpus=8), B.server("bad", gpus=8)),
        failures=history,
    )
    plan = plan_round(snap, policy, NOW, random.Random(0))
    assert len(plan.placements) == 9
    return {(p.chute_id, p.server_id) for p in plan.placements}


def test_the_failure_charge_follows_the_servers_reliability(policy: PlanPolicy) -> None:
    # The bad box fails one deploy in two or three whatever runs on it: one 8-GPU deploy there
    # risks one failure where eight 1-GPU deploys risk eight.
    assert _unreliable_box(policy) == {("big", "bad"), ("small", "good")}
    # Without a per-deploy charge only the 0.1 % counts: the better payer takes the better box.
    free_of_charge = replace(policy, failed_deploy_cost=0.0)
    assert _unreliable_box(free_of_charge) == {("big", "good"), ("small", "bad")}


def test_local_search_trades_boxes_without_the_exact_pass(policy: PlanPolicy) -> None:
    # The greedy gives the big chute (0.1 % more per GPU) the good box first; with neither the
    # re-priced second greedy pass nor the exact 1-GPU pass, only the local search's box trade
    # puts it on the unreliable one.
    heuristic_only = replace(policy, exact_pairs_limit=0, opportunity_passes=1)
    assert _unreliable_box(heuristic_only) == {("big", "bad"), ("small", "good")}


def test_size_priority_lets_a_big_chute_go_first_in_a_near_tie(policy: PlanPolicy) -> None:
    free_of_charge = replace(policy, failed_deploy_cost=0.0)
    assert "big" not in _one_box(free_of_charge)
    assert _one_box(replace(free_of_charge, size_priority=0.05)) == ["big"]


def test_sunk_cost_search_takes_the_most_reliable_server_whatever_its_cost(
    policy: PlanPolicy,
) -> None:
    chute = B.chute("c")
    servers = tuple(B.server(f"s{i}", gpus=1, cost=1.0 + 0.1 * i) for i in range(12))
    # Failures of other chutes on every server but s7, the most expensive but one.
    failed = [record(f"x{i}", f"s{i}", i, failed=True) for i in range(12) if i != 7]
    history = (*failed, record("x7", "s7", 7, failed=False))
    snap = Snapshot(chutes=(chute,), servers=servers, failures=history)
    for seed in range(5):
        [p] = plan_round(snap, policy, NOW, random.Random(seed)).placements
        assert p.server_id == "s7"


def test_deaths_on_a_bad_box_are_blamed_on_the_box_not_the_chutes(policy: PlanPolicy) -> None:
    # "a" died twice, both times on the box where two other chutes died too (3-5 h ago, every
    # back-off over). Counted against the chute in full, two deaths put it below 0.65 and out
    # of the whole fleet; attributed, they fall on the box.
    history = (
        record("a", "bad", 0, failed=True, hours_ago=3),
        record("a", "bad", 1, failed=True, hours_ago=4),
        record("b", "bad", 2, failed=True, hours_ago=4.5),
        record("c", "bad", 3, failed=True, hours_ago=5),
    )
    rel = reliability(history, NOW, policy.reliability, policy.backoff)
    assert rel.server_factor["bad"] < 0.75
    assert rel.chute_p("a") > 0.75 and rel.chute_p("b") > 0.8
    snap = Snapshot(
        chutes=(B.chute("a"),),
        servers=(B.server("bad", gpus=1), B.server("good", gpus=1)),
        failures=history,
    )
    [p] = plan_round(snap, policy, NOW, random.Random(0)).placements
    assert (p.chute_id, p.server_id) == ("a", "good")


def test_a_chute_dying_on_good_boxes_is_blamed_itself(policy: PlanPolicy) -> None:
    # "x" died on three boxes where other chutes keep running: the chute is the cause, the
    # boxes keep (almost) their prior.
    healthy = tuple(
        record(f"ok{i}", f"s{i}", 10 + 3 * i + k, failed=False, hours_ago=6 + k)
        for i in range(3)
        for k in range(3)
    )
    deaths = tuple(record("x", f"s{i}", i, failed=True, hours_ago=3 + i) for i in range(3))
    rel = reliability(healthy + deaths, NOW, policy.reliability, policy.backoff)
    assert rel.chute_p("x") < policy.reliability.exclude_below
    assert all(rel.server_factor[f"s{i}"] > 0.97 for i in range(3))
    assert rel.p("ok0", "s0") > rel.prior
