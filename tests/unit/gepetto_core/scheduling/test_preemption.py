"""Preemption guardrails, hysteresis, budget, stabilisation and the launch-token-first order."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from gepetto_core.scheduling import (
    PlanPolicy,
    PreemptionRecord,
    RoundPlan,
    Snapshot,
    Step,
    plan_round,
)

from .conftest import NOW, Builder

B = Builder()
POLICY = PlanPolicy(cost_weight=0.0)


def scenario(
    victim_change: Callable[[Any], Any] = lambda d: d,
    victim_chute_change: Callable[[Any], Any] = lambda c: c,
    newcomer_change: Callable[[Any], Any] = lambda c: c,
    server_change: Callable[[Any], Any] = lambda s: s,
    **snap_kw: Any,
) -> Snapshot:
    """One single-GPU server held by a low-value instance; a bounty chute wants the GPU."""
    victim_chute = victim_chute_change(B.chute("victim", multiplier=0.2, instance_count=5))
    newcomer = newcomer_change(B.chute("hot", multiplier=5.0, bounty_boost=1.2, instance_count=3))
    server = server_change(B.server("s1", gpus=1, used={0: "dep-v"}))
    victim = victim_change(B.deployment("dep-v", "victim", "s1", (0,), activated_minutes_ago=120))
    return Snapshot(
        chutes=(victim_chute, newcomer), servers=(server,), deployments=(victim,), **snap_kw
    )


def run(snap: Snapshot, policy: PlanPolicy = POLICY) -> RoundPlan:
    return plan_round(snap, policy, NOW, random.Random(0))


def test_bounty_preempts_an_old_low_value_instance_after_the_launch_token() -> None:
    plan = run(scenario())
    assert plan.placements == ()
    [pre] = plan.preemptions
    assert pre.kind == "bounty" and pre.victims == ("dep-v",) and pre.confirmed
    assert pre.placement.gpu_ids == ("s1-g0",)
    assert pre.token_before_undeploy
    assert pre.steps == (Step.ACQUIRE_LAUNCH_TOKEN, Step.UNDEPLOY_VICTIMS, Step.DEPLOY)


GUARDRAILS: list[tuple[str, Callable[[Any], Any], Callable[[Any], Any]]] = [
    ("private instance", lambda d: replace(d, preemptible=False), lambda c: c),
    ("job", lambda d: replace(d, job_id="job-9"), lambda c: c),
    ("only instance network-wide", lambda d: d, lambda c: replace(c, instance_count=1)),
    (
        "30 minutes since activation",
        lambda d: replace(d, activated_at=NOW - timedelta(minutes=30)),
        lambda c: c,
    ),
    ("not activated yet", lambda d: replace(d, active=False, activated_at=None), lambda c: c),
]


@pytest.mark.parametrize(
    ("name", "victim_change", "chute_change"), GUARDRAILS, ids=[g[0] for g in GUARDRAILS]
)
def test_guardrails_protect_the_victim(
    name: str, victim_change: Callable[[Any], Any], chute_change: Callable[[Any], Any]
) -> None:
    plan = run(scenario(victim_change, chute_change))
    assert plan.preemptions == ()


def test_hysteresis_keeps_an_instance_that_is_nearly_as_good() -> None:
    # Victim earns 4 * 4.1 = 16.4/h; the newcomer about 16.8/h: less than the 25 % required.
    snap = scenario(victim_change=lambda d: replace(d, compute_multiplier=4.1))
    assert run(snap).preemptions == ()
    # Without the 25 % rule the pay-back rule still refuses: the ~0.4/h gain does not repay
    # in 2 h the 16.4/h the victim would lose during the newcomer's 15-minute start-up.
    no_ratio = replace(POLICY.preemption, min_gain_ratio=0.0)
    assert run(snap, replace(POLICY, preemption=no_ratio)).preemptions == ()
    patient = replace(no_ratio, payback=timedelta(hours=20))
    assert len(run(snap, replace(POLICY, preemption=patient)).preemptions) == 1


def test_budget_per_server() -> None:
    recent = (PreemptionRecord("s1", NOW - timedelta(hours=2)),)
    assert run(scenario(recent_preemptions=recent)).preemptions == ()
    old = (PreemptionRecord("s1", NOW - timedelta(hours=7)),)
    assert len(run(scenario(recent_preemptions=old)).preemptions) == 1


def test_budget_fleet_wide() -> None:
    recent = tuple(PreemptionRecord(f"other{i}", NOW - timedelta(minutes=10)) for i in range(4))
    assert run(scenario(recent_preemptions=recent)).preemptions == ()


def test_better_work_must_be_proposed_twice() -> None:
    no_bounty = scenario(newcomer_change=lambda c: replace(c, bounty_boost=1.0))
    [first] = run(no_bounty).preemptions
    assert first.kind == "better_work" and not first.confirmed
    again = replace(no_bounty, proposed_preemptions=frozenset({("hot", "s1")}))
    [second] = run(again).preemptions
    assert second.confirmed


def test_job_preempts_by_the_official_multiplier_rule() -> None:
    snap = scenario(newcomer_change=lambda c: replace(c, bounty_boost=1.0, job_ids=("job-1",)))
    [pre] = run(snap).preemptions
    assert pre.kind == "job" and pre.placement.job_id == "job-1" and pre.confirmed


def test_preemption_can_be_switched_off() -> None:
    off = replace(POLICY, preemption=replace(POLICY.preemption, enabled=False))
    assert run(scenario(), off).preemptions == ()


def test_a_newcomer_must_earn_the_idle_gpus_it_would_put_to_work() -> None:
    """One 1-GPU victim on an 8-GPU server at $3 per GPU-hour, seven GPUs idle: an 8-GPU bounty
    chute in its place would hold $24/h of GPUs. Counted (kappa = 1) it must earn them."""

    def snap(multiplier: float) -> Snapshot:
        return scenario(
            victim_chute_change=lambda c: B.chute(
                "victim", multiplier=0.2, instance_count=5, allowance=0
            ),
            newcomer_change=lambda c: B.chute(
                "hot", gpu_count=8, multiplier=multiplier, bounty_boost=1.2, instance_count=3
            ),
            server_change=lambda s: B.server("s1", gpus=8, cost=3.0, used={0: "dep-v"}),
        )

    counted = replace(POLICY, cost_weight=1.0)
    assert run(snap(4.0), counted).preemptions == ()  # ~$14/h gross for $24/h of GPUs
    assert len(run(snap(4.0)).preemptions) == 1  # the cost sunk: worth it
    [pre] = run(snap(10.0), counted).preemptions  # ~$36/h gross: worth its GPUs
    assert pre.victims == ("dep-v",)
