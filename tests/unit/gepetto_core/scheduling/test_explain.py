"""`explain` for placed, skipped and never-eligible chutes; the `scales` and `chutes` views."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from gepetto_core.errors import NotFoundError
from gepetto_core.scheduling import (
    ChuteUtilization,
    PlanPolicy,
    Reason,
    Snapshot,
    explain,
    plan_round,
    rank_chutes,
    rank_pairs,
)

from .conftest import NOW, Builder

B = Builder()
POLICY = PlanPolicy(cost_weight=0.0)

SNAP = Snapshot(
    chutes=(
        B.chute("winner", multiplier=3.0),
        B.chute("loser", multiplier=1.0),
        B.chute("banned", ban_reason="abuse"),
        B.chute("tee-only", tee=True),
        B.chute("paused", utilization=ChuteUtilization(scalable=False)),
    ),
    servers=(B.server("s1", gpus=1), B.server("s2", gpus=1, locked=True)),
)
PLAN = plan_round(SNAP, POLICY, NOW, random.Random(0))


def test_placed_chute_names_server_and_value() -> None:
    e = explain(SNAP, PLAN, "winner")
    assert e.verdict == "placed" and e.placed == 1
    assert e.best_server_id == "s1" and e.best_value is not None and e.best_value > 0
    assert "best value" in e.detail


def test_skipped_chute_says_it_was_outbid_and_what_it_needed() -> None:
    e = explain(SNAP, PLAN, "loser")
    assert e.verdict == "skipped" and e.rule is Reason.OUTBID
    assert e.best_server_id == "s1"
    assert e.needed_value is not None and e.best_value is not None
    assert e.needed_value > e.best_value  # it would have had to beat the winner
    assert "outbid" in str(e)


@pytest.mark.parametrize(
    ("chute_id", "rule"),
    [
        ("banned", Reason.BANNED),
        ("paused", Reason.NOT_SCALABLE),
        ("tee-only", Reason.TEE_MISMATCH),
    ],
)
def test_never_eligible_chutes_name_the_rule(chute_id: str, rule: Reason) -> None:
    e = explain(SNAP, PLAN, chute_id)
    assert e.verdict == "never_eligible" and e.rule is rule


def test_unknown_chute_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="did you mean"):
        explain(SNAP, PLAN, "winn")


def test_a_fenced_server_with_room_is_named_not_a_full_fleet() -> None:
    """The only server with room is in back-off: the operator hears about the back-off."""
    deaths = B.early_deaths("bad")
    snap = Snapshot(
        chutes=(B.chute("waiting", multiplier=2.0),),
        servers=(B.server("full", gpus=1, used={0: "x"}), B.server("bad", gpus=2)),
        failures=deaths,
    )
    closed = replace(POLICY, backoff=replace(POLICY.backoff, fenced_server_probes=0))
    e = explain(snap, plan_round(snap, closed, NOW, random.Random(0)), "waiting")
    assert e.verdict == "skipped" and e.rule is Reason.SERVER_BACKOFF
    assert "node-bad has room but is left out: server back-off" in e.detail

    calm = replace(snap, failures=())
    assert explain(calm, plan_round(calm, closed, NOW, random.Random(0)), "waiting").placed == 1


def test_rank_pairs_lists_what_fits_first_with_reasons() -> None:
    rows = rank_pairs(SNAP, POLICY, NOW)
    assert rows[0].chute_id == "winner" and rows[0].server_id == "s1" and rows[0].fits_now
    locked = [r for r in rows if r.server_id == "s2"]
    assert locked and all(not r.fits_now and "locked" in (r.reason or "") for r in locked)
    banned = [r for r in rows if r.chute_id == "banned"]
    assert banned and all(not r.fits_now for r in banned)
    assert rank_pairs(SNAP, POLICY, NOW, server_filter="node-s2") == locked
    assert rank_pairs(SNAP, POLICY, NOW, gpu_filter="h200") == []


def test_rank_chutes_orders_eligible_by_score() -> None:
    rows = rank_chutes(SNAP, POLICY, NOW)
    assert [r.chute_id for r in rows[:2]] == ["winner", "loser"]
    assert {r.chute_id for r in rows if not r.eligible} == {"banned", "paused"}
