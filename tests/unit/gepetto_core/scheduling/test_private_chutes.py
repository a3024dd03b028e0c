"""Rules the validator enforces on private chutes at launch, as planner rules: the public
footprint a miner needs before it may run them (else 403), and the hold after a launch the
validator refused."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest

from gepetto_core.scheduling import (
    FailureRecord,
    PlanPolicy,
    PublicFootprint,
    Reason,
    Snapshot,
    backoff_state,
    explain,
    plan_round,
    rank_pairs,
)
from gepetto_core.scheduling.backoff import (
    EMPTY_BACKOFF,
    LAUNCH_REFUSED,
    refusal_reason,
    refused_jobs,
)
from gepetto_core.scheduling.reliability import reliability
from gepetto_core.scheduling.rules import (
    PRIVATE_MIN_PUBLIC_GPUS,
    PRIVATE_MIN_PUBLIC_INSTANCES,
    chute_rejection,
    public_footprint_rejection,
)

from .conftest import NOW, VAL, Builder

B = Builder()
POLICY = PlanPolicy(cost_weight=0.0, max_deploys_per_round=None, max_pulls_per_server=None)
# A private chute billed per instance, on the launch-config flow: the validator's gate covers it.
PRIVATE = B.chute("priv", preemptible=False, chutes_version="0.3.12", multiplier=5.0)
PUBLIC = B.chute("pub", chutes_version="0.3.12")


def footprint(instances: int, gpus: int, validator: str = VAL) -> PublicFootprint:
    return PublicFootprint(validator, instances, gpus)


def snap_with(*footprints: PublicFootprint, chutes: tuple[object, ...] = (PRIVATE,)) -> Snapshot:
    servers = (B.server("s1", gpus=8),)
    return Snapshot(chutes=chutes, servers=servers, public_footprints=footprints)  # type: ignore[arg-type]


def test_the_thresholds_are_the_validators() -> None:
    assert (PRIVATE_MIN_PUBLIC_INSTANCES, PRIVATE_MIN_PUBLIC_GPUS) == (2, 16)


@pytest.mark.parametrize(
    ("instances", "gpus", "blocked"),
    [
        (0, 0, True),
        (1, 16, True),  # enough GPUs on one instance: too few instances
        (2, 15, True),  # one GPU short
        (8, 8, True),  # many small instances: too few GPUs
        (2, 16, False),  # exactly at both thresholds
        (3, 24, False),
    ],
)
def test_a_private_chute_needs_the_public_footprint(
    instances: int, gpus: int, blocked: bool
) -> None:
    snap = snap_with(footprint(instances, gpus))
    rej = chute_rejection(PRIVATE, snap, POLICY, EMPTY_BACKOFF)
    if blocked:
        assert rej is not None and rej.reason is Reason.PUBLIC_FOOTPRINT
        assert f"we run {instances} using {gpus}" in rej.detail
        assert "at least 2 activated public instances using 16 or more GPUs" in rej.detail
    else:
        assert rej is None


@pytest.mark.parametrize(
    "chute",
    [
        PUBLIC,
        # private but legacy-billed or chutes-owned: the validator marks it preemptible
        replace(PRIVATE, preemptible=True),
        # older than the launch-config flow: the legacy route never had the gate
        replace(PRIVATE, chutes_version="0.2.55"),
        replace(PRIVATE, chutes_version=None),
    ],
    ids=["public", "legacy-billed private", "legacy chutes 0.2", "no chutes version"],
)
def test_chutes_outside_the_gate_are_unaffected(chute: object) -> None:
    snap = snap_with(footprint(0, 0), chutes=(chute,))
    assert public_footprint_rejection(chute, snap) is None  # type: ignore[arg-type]
    assert chute_rejection(chute, snap, POLICY, EMPTY_BACKOFF) is None  # type: ignore[arg-type]


def test_an_unknown_footprint_rejects_nothing() -> None:
    """Before the validator's instance list is known the launch itself will tell."""
    assert chute_rejection(PRIVATE, snap_with(), POLICY, EMPTY_BACKOFF) is None


def test_the_footprint_counts_on_the_chutes_own_validator() -> None:
    elsewhere = footprint(10, 80, validator="5other")
    rej = chute_rejection(PRIVATE, snap_with(elsewhere, footprint(1, 8)), POLICY, EMPTY_BACKOFF)
    assert rej is not None and rej.reason is Reason.PUBLIC_FOOTPRINT
    assert chute_rejection(PRIVATE, snap_with(elsewhere), POLICY, EMPTY_BACKOFF) is None


def test_the_planner_skips_it_and_why_and_scales_say_so() -> None:
    snap = snap_with(footprint(1, 8), chutes=(PRIVATE, PUBLIC))
    plan = plan_round(snap, POLICY, NOW, random.Random(1))
    assert {p.chute_id for p in plan.placements} == {"pub"}
    why = explain(snap, plan, "priv")
    assert why.verdict == "never_eligible" and why.rule is Reason.PUBLIC_FOOTPRINT
    assert "public_footprint" in str(why) and "we run 1 using 8" in str(why)
    pairs = [p for p in rank_pairs(snap, POLICY, NOW) if p.chute_id == "priv"]
    assert pairs and all(not p.fits_now for p in pairs)
    assert all(p.reason and p.reason.startswith("public_footprint:") for p in pairs)


def test_once_the_miner_qualifies_the_planner_places_it() -> None:
    snap = snap_with(footprint(2, 16), chutes=(PRIVATE, PUBLIC))
    plan = plan_round(snap, POLICY, NOW, random.Random(1))
    assert "priv" in {p.chute_id for p in plan.placements}
    assert next(p for p in rank_pairs(snap, POLICY, NOW) if p.chute_id == "priv").fits_now


def test_a_job_of_a_private_chute_is_not_gated() -> None:
    """The validator checks scalability only for launches without a job."""
    chute = replace(PRIVATE, job_ids=("job-1",))
    plan = plan_round(snap_with(footprint(0, 0), chutes=(chute,)), POLICY, NOW, random.Random(1))
    assert [p.job_id for p in plan.placements] == ["job-1"]


# --- a launch the validator refused (403) ---------------------------------------------------


def refused(
    minutes_ago: float, chute_id: str = "pub", detail: str = "HTTP 403: no"
) -> FailureRecord:
    at = NOW - timedelta(minutes=minutes_ago)
    return FailureRecord(
        f"ref-{minutes_ago}", chute_id, "s1", "a100", at, at, LAUNCH_REFUSED + detail, False
    )


def test_a_refused_launch_holds_the_chute_back_for_the_cooldown() -> None:
    cooldown = POLICY.backoff.launch_refusal_cooldown
    minutes = cooldown.total_seconds() / 60
    held = backoff_state([refused(minutes - 1)], NOW, POLICY.backoff)
    rej = chute_rejection(PUBLIC, snap_with(chutes=(PUBLIC,)), POLICY, held)
    assert rej is not None and rej.reason is Reason.LAUNCH_REFUSED
    assert "HTTP 403: no" in rej.detail and "next try after" in rej.detail
    over = backoff_state([refused(minutes + 1)], NOW, POLICY.backoff)
    assert chute_rejection(PUBLIC, snap_with(chutes=(PUBLIC,)), POLICY, over) is None


def test_a_cleared_refusal_holds_nothing() -> None:
    state = backoff_state([replace(refused(5), forgiven=True)], NOW, POLICY.backoff)
    assert state.chute_refusal("pub") is None


def test_the_latest_refusal_counts() -> None:
    state = backoff_state(
        [refused(20, detail="old"), refused(5, detail="new")], NOW, POLICY.backoff
    )
    refusal = state.chute_refusal("pub")
    assert refusal is not None and refusal.detail == "new"
    assert refusal.until == NOW - timedelta(minutes=5) + POLICY.backoff.launch_refusal_cooldown


def test_a_refusal_is_not_a_failure() -> None:
    """The chute never ran: no back-off scope, no probation, no reliability evidence."""
    records = [refused(5), refused(6, chute_id="other")]
    state = backoff_state(records, NOW, POLICY.backoff)
    assert not state.pairs and not state.chutes and not state.servers and not state.suspects
    rel = reliability(records, NOW, POLICY.reliability, POLICY.backoff)
    assert not rel.chute and not rel.server_factor and not rel.pair_factor


def test_the_planner_does_not_retry_a_refused_chute_every_round() -> None:
    snap = replace(snap_with(chutes=(PUBLIC,)), failures=(refused(1),))
    plan = plan_round(snap, POLICY, NOW, random.Random(1))
    assert plan.placements == ()
    why = explain(snap, plan, "pub")
    assert why.verdict == "skipped" and why.rule is Reason.LAUNCH_REFUSED
    later = NOW + POLICY.backoff.launch_refusal_cooldown
    assert [p.chute_id for p in plan_round(snap, POLICY, later, random.Random(1)).placements] == [
        "pub"
    ]


def test_a_refused_job_is_held_for_good_and_only_the_job() -> None:
    """The validator refuses (403) a job the miner already tried: that job, not its chute."""
    at = NOW - timedelta(days=2)
    reason = refusal_reason("HTTP 403: You have already attempted job j-1", job_id="j-1")
    record = FailureRecord("ref-j", "pub", "s1", "a100", at, at, reason, False)
    assert refused_jobs([record, refused(1)]) == {"j-1"}
    assert backoff_state([record], NOW, POLICY.backoff).chute_refusal("pub") is None
    assert refusal_reason("HTTP 403: no") == LAUNCH_REFUSED + "HTTP 403: no"
