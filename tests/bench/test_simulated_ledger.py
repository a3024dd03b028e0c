"""The benchmark's gepetto driver feeds the planner what the service would: the ledger keeps
each end's activation time, a claim the validator refused is a 423 (never a failure), and each
chute's observed start-up replaces the per-size default."""

from __future__ import annotations

from bench.fleets import Truth, World
from bench.simulate import Gepetto, Result, Sim
from tests.unit.gepetto_core.scheduling.builders import Builder

B = Builder()


def _sim(fail: float) -> Sim:
    chute = B.chute("c", multiplier=1.0, allowance=1)
    truth = Truth(chute_fail={"c": fail}, startup_range={"c": (7.0, 7.0)})
    world = World(
        profile="legacy",
        servers=[B.server("s1", gpus=1)],
        chutes=[chute],
        truth=truth,
        targets={"c": 2},
        others={"c": 1},
    )
    sim = Sim(world, seed=1)
    sim.result = Result("gepetto")
    return sim


def _step(sim: Sim, policy: Gepetto, minutes: int) -> None:
    for _ in range(minutes):
        sim.now += 1
        sim.tick_world()
        policy.decide(sim)


def test_a_running_instance_shows_its_observed_start_up() -> None:
    sim = _sim(fail=0.0)
    assert sim.launch("c", "s1") == "ok"
    policy = Gepetto(tuned=False)
    sim.now = 20
    sim.tick_world()
    [chute] = policy.snapshot(sim).chutes
    assert chute.startup_minutes == 7.0
    [deployment] = policy.snapshot(sim).deployments
    assert deployment.activated_at is not None


def test_a_death_keeps_whether_it_activated_and_counts_as_a_crash() -> None:
    sim = _sim(fail=0.95)  # capped at 0.95: seed 1's first launch of the pair dies
    assert sim.launch("c", "s1") == "ok"
    [inst] = sim.live
    assert inst.death_at is not None
    policy = Gepetto(tuned=False)
    _step(sim, policy, inst.death_at + 1)
    record = next(r for r in policy.ledger if r.deployment_id == inst.dep_id)
    assert record.reason == "crash" and record.counted
    assert (record.activated_at is not None) is (inst.activate_at < inst.death_at)


def test_a_claim_refused_by_the_validator_is_a_423_not_a_failure() -> None:
    sim = _sim(fail=0.0)
    assert sim.launch("c", "s1") == "ok"
    [inst] = sim.live
    inst.refused_at_claim = True
    sim._end(inst, validator_removed=False)
    policy = Gepetto(tuned=False)
    policy.decide(sim)
    [record] = policy.ledger
    assert record.reason == "423" and not record.counted and record.activated_at is None
