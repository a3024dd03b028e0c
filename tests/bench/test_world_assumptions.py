"""The simulator's world assumptions and baselines (`bench.simulate`), on a small fleet.

These check rules, not figures: what a policy may do in a given world, and what the world pays.
"""

from __future__ import annotations

from bench.assumptions import Assumptions
from bench.fleets import make_world
from bench.simulate import Fork, Idle, Official, Sim, simulate


def test_scaled_failures_and_startups_leave_the_fleet_alone() -> None:
    world = make_world("legacy", 60, 10, 10_001, p_scalable=1.0)
    sim = Sim(world, 10_001, assumptions=Assumptions(failure_scale=2.0, startup_scale=1.5))
    cid, sid = world.chutes[0].chute_id, world.servers[0].server_id
    survive = 1 - world.truth.p_fail(cid, sid)
    assert 1 - sim.world.truth.p_fail(cid, sid) < survive  # likelier to fail...
    lo, hi = world.truth.startup_range[cid]
    assert sim.world.truth.startup_range[cid] == (1.5 * lo, 1.5 * hi)
    assert world.truth.startup_range[cid] == (lo, hi)  # ...in the copy only
    assert Assumptions().label() == "default"
    assert Assumptions(dynamic=True).label() == "dynamic=True"


def test_tee_matched_fork_never_puts_a_chute_on_the_wrong_kind_of_server() -> None:
    world = make_world("legacy", 80, 12, 10_002, p_scalable=1.0)
    sim = Sim(world, 10_002)
    fork = Fork(stall_free=True, tee_matched=True)
    for minute in range(6 * 60):
        sim.now = minute
        sim.tick_world()
        fork.decide(sim)
    for inst in sim.live + sim.ended:
        assert sim.servers[inst.server_id].is_tee == sim.chutes[inst.chute_id].tee


def test_stall_free_fork_skips_a_chute_refused_at_launch() -> None:
    fork = Fork(stall_free=True)
    fork.trace_deleted("c", at=10, refused=True)
    assert fork.is_failed("c", now=20)
    assert not fork.is_failed("c", now=80)
    as_written = Fork()
    as_written.trace_deleted("c", at=10, refused=True)
    assert not as_written.is_failed("c", now=20)  # the stall: retried every 5 minutes


def test_prefilled_start_holds_the_share_with_established_instances() -> None:
    world = make_world("tee", 120, 10, 10_003, p_scalable=1.0)
    sim = Sim(world, 10_003, assumptions=Assumptions(prefill=0.6))
    assert sim.busy_gpus() >= 0.5 * sim.total_gpus
    assert all(i.prefilled and i.activate_at < 0 and i.claimed for i in sim.live)
    for cid in sim.chutes:  # the validator counts them, and never beyond the target
        assert sim.total(cid) <= world.targets[cid] or sim.claimed.get(cid, 0) == 0


def test_no_policy_earns_only_what_the_fleet_started_with() -> None:
    world = make_world("tee", 120, 10, 10_003, p_scalable=1.0)
    empty = simulate(world, 10_003, Idle(), 3)
    assert (empty.deploys, empty.multiplier_hours) == (0, 0.0)
    prefilled = simulate(world, 10_003, Idle(), 3, assumptions=Assumptions(prefill=0.6))
    assert prefilled.deploys == 0 and prefilled.multiplier_hours > 0
    fork = simulate(world, 10_003, Fork(), 3, assumptions=Assumptions(prefill=0.6))
    assert fork.multiplier_hours >= prefilled.multiplier_hours


def test_a_decaying_bounty_is_paid_to_one_instance_only() -> None:
    world = make_world("tee", 200, 12, 10_004, p_scalable=1.0)
    bounty = [c for c in world.chutes if c.bounty_boost > 1]
    assert bounty, "the fleet needs a bounty chute for this test"
    sim = Sim(world, 10_004, assumptions=Assumptions(bounty="once_decaying"))
    official = Official()
    for minute in range(4 * 60):
        sim.now = minute
        sim.tick_world()
        official.decide(sim)
    for c in bounty:
        mine = [i for i in sim.live + sim.ended if i.chute_id == c.chute_id and i.bounty > 1]
        assert len(mine) <= 1
        if mine:  # claimed: the chute pays its plain rate from then on
            assert sim.chutes[c.chute_id].bounty_boost == 1.0


def test_dynamic_targets_move_and_stay_consistent() -> None:
    world = make_world("legacy", 60, 8, 10_005, p_scalable=1.0)
    sim = Sim(world, 10_005, assumptions=Assumptions(dynamic=True))
    before = dict(sim.world.targets)
    for epoch in range(1, 5):
        sim.now = 30 * epoch
        sim.recompute()
    assert sim.world.targets != before
    assert world.targets == before  # the fleet itself is not changed: cells share it
    for cid, target in sim.world.targets.items():
        assert target >= 1 and 0 <= sim.world.others[cid] <= target


def test_elastic_gpu_cost_is_charged_while_instances_hold_gpus() -> None:
    world = make_world("legacy", 60, 8, 10_006, p_scalable=1.0)
    r = simulate(world, 10_006, Official(), hours=2)
    assert r.deploys > 0 and r.gpu_cost > 0
    assert r.profit == 4.0 * r.multiplier_hours - r.gpu_cost


def test_a_chute_nobody_runs_gets_the_validators_floor_on_its_target() -> None:
    world = make_world("tee", 200, 10, 10_003, p_scalable=0.35)
    cold = [cid for cid, others in world.others.items() if others == 0]
    warm = [cid for cid, others in world.others.items() if others > 0]
    assert cold and warm and any(world.targets[cid] < 5 for cid in cold)
    sim = Sim(world, 10_003, assumptions=Assumptions(cold_target=5))
    assert all(sim.world.targets[cid] == max(5, world.targets[cid]) for cid in cold)
    assert all(sim.world.targets[cid] == world.targets[cid] for cid in warm)
    assert all(sim.scale_allowance(cid) >= 5 for cid in cold)  # advertised with allowance
    assert Sim(world, 10_003).world.targets == world.targets  # the default world is unchanged
