"""The benchmark's gepetto driver carries out the planner's preemptions the way the autoscaler
service does: launch token first, victims removed, their ends never counted as failures."""

from __future__ import annotations

from bench.fleets import Truth, World
from bench.simulate import Gepetto, Result, Sim
from tests.unit.gepetto_core.scheduling.builders import Builder

B = Builder()


def _world(hot_allowance: int) -> World:
    victim = B.chute("victim", multiplier=0.2, allowance=1)
    hot = B.chute("hot", multiplier=5.0, bounty_boost=1.2, allowance=hot_allowance)
    truth = Truth(startup_range={"victim": (5.0, 5.0), "hot": (5.0, 5.0)})
    return World(
        profile="legacy",
        servers=[B.server("s1", gpus=1)],
        chutes=[victim, hot],
        truth=truth,
        targets={"victim": 6, "hot": 3 + hot_allowance},
        others={"victim": 5, "hot": 3},
    )


def _run(hot_allowance: int) -> tuple[Sim, Gepetto]:
    sim = Sim(_world(hot_allowance), seed=1)
    sim.result = Result("gepetto")
    assert sim.launch("victim", "s1") == "ok"
    policy = Gepetto(preemption=True)
    sim.now = 200  # the victim activated at minute 5: well past the 65-minute dwell
    policy.decide(sim)
    sim.now = 201
    policy.decide(sim)  # books the removal in the ledger
    return sim, policy


def test_a_bounty_preempts_and_the_victim_is_not_a_failure() -> None:
    sim, policy = _run(hot_allowance=1)
    assert [i.chute_id for i in sim.live] == ["hot"]
    assert sim.result.preemptions == 1
    [ended] = sim.ended
    assert ended.chute_id == "victim" and not ended.validator_removed
    [row] = policy.ledger
    assert row.reason == "preempted" and not row.counted
    assert sim.finish(0.0).failed_deploys == 0  # it lived over an hour after activation


def test_no_allowance_no_preemption() -> None:
    sim, policy = _run(hot_allowance=0)
    assert [i.chute_id for i in sim.live] == ["victim"]
    assert sim.result.preemptions == 0 and policy.ledger == []
