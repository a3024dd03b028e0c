"""Private chutes against the validator sandbox's own gate: it refuses them (403) to a miner
without 2 activated public instances on 16 GPUs. The autoscaler must not ask before the miner
qualifies, must say why (`why`, `scales`), and must ask once it does. A 403 it does not model
holds the chute back for a while instead of being asked again every round."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from gepetto_core.commands import cli_caller, execute
from gepetto_core.render_text import render_text
from gepetto_core.scheduling.policy import PlanPolicy
from gepetto_core.scheduling.rules import Reason
from gepetto_core.scheduling.snapshot import Snapshot
from gepetto_core.services.autoscaler import Autoscaler
from gepetto_core.services.planning_input import load_snapshot, plan_policy
from gepetto_sandbox.validator.faults import Fault
from gepetto_sandbox.validator.world import Rejected

from .conftest import MINER, Miner, eventually


def autoscaler(m: Miner, chute_ids: set[str]) -> Autoscaler:
    """The autoscaler over the real sync and inventory, shown only `chute_ids` (so the test
    decides which public chutes fill the fleet)."""
    rt = m.rt

    async def build() -> Snapshot:
        await rt.sync.sync_all()
        loaded = await load_snapshot(rt.inventory, rt.state, rt.sync.snapshots, m.clock())
        snap = loaded.snapshot
        return replace(snap, chutes=tuple(c for c in snap.chutes if c.chute_id in chute_ids))

    policy: PlanPolicy = replace(
        plan_policy(m.settings), max_deploys_per_round=None, max_pulls_per_server=None
    )
    return Autoscaler(
        rt.state,
        rt.deployer,
        rt.validators,
        build,
        policy=policy,
        clock=m.clock,
        synced=lambda: rt.sync.snapshots,
    )


def add_chute(m: Miner, template: dict[str, Any], suffix: str, **changes: Any) -> str:
    """A copy of a generated chute under a new id: a launch-config chute with cords."""
    row = copy.deepcopy(template)
    del row["supported_gpus"]  # computed again from the new node selector
    row.update(
        chute_id=f"{template['chute_id'][: -len(suffix)]}{suffix}",
        name=f"{template['name']}-{suffix}",
        chutes_version="0.3.30",
        cords=template["cords"] or [{"method": "POST", "path": "/x", "function": "x"}],
        tee=False,
        **changes,
    )
    m.world.validator.add_chute(row)
    return str(row["chute_id"])


def launch_requests(m: Miner, chute_id: str) -> int:
    return sum(
        1
        for r in m.world.validator.requests
        if r.path == "/instances/launch_config" and r.query.get("chute_id") == chute_id
    )


def nodes_by_type(m: Miner) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for node in m.world.fleet:
        out.setdefault(node.gpu_type, []).append(node)
    return out


async def command(m: Miner, *words: str) -> str:
    return render_text(await execute(list(words), cli_caller("operator"), m.rt))


async def test_a_private_chute_waits_for_the_public_footprint(miner: Miner) -> None:
    world = miner.world.validator.world
    nodes = nodes_by_type(miner)
    big = [n for n in miner.world.fleet if n.gpu_count == 8]
    small = [n for n in miner.world.fleet if n.gpu_count < 8]
    assert len(big) >= 2 and small, nodes  # two 8-GPU boxes make the footprint
    template = next(c for c in world.chutes.values() if c["cords"])
    big_types = sorted({n.gpu_type for n in big})
    public = [
        add_chute(
            miner,
            template,
            f"pub{i}",
            public=True,
            preemptible=True,
            node_selector={"gpu_count": 8, "include": big_types},
        )
        for i in range(2)
    ]
    private = add_chute(
        miner,
        template,
        "priv",
        public=False,
        preemptible=False,
        max_instances=3,
        node_selector={"gpu_count": 1, "include": [small[0].gpu_type]},
    )
    for chute_id in public:
        miner.world.validator.set_target(chute_id, 20)
    miner.world.validator.set_target(private, 2)
    miner.world.validator.create_bounty(private)  # a request waits: the private chute is wanted
    assert (await miner.rt.reconciler.run_once()).plan.complete

    # The validator would refuse our miner the private chute now.
    with pytest.raises(Rejected) as refused:
        world.issue_launch_config(MINER, private)
    assert refused.value.status == 403

    scaler = autoscaler(miner, {*public, private})
    first = await scaler.run_round()
    assert first.error is None and first.plan is not None
    placed = [o.placement.chute_id for o in first.outcomes if o.result == "deployed"]
    assert sorted(placed) != [] and set(placed) <= set(public), first.outcomes
    assert launch_requests(miner, private) == 0  # not asked: it would have been a 403
    decision = first.plan.decisions[private]
    assert decision.rejection is not None
    assert decision.rejection.reason is Reason.PUBLIC_FOOTPRINT

    why = await command(miner, "why", private)
    assert "public_footprint" in why and "16 or more GPUs" in why, why
    scales = await command(miner, "scales", "-g", small[0].gpu_type, "--limit", "200")
    assert "public_footprint" in scales, scales

    # The pods of the public chutes come up and activate: the miner qualifies.
    async def qualified() -> bool:
        mine = [
            i
            for i in world.instances.values()
            if i["miner_hotkey"] == MINER and i["active"] and i["chute_id"] in public
        ]
        return len(mine) >= 2

    await eventually(qualified)
    world.issue_launch_config(MINER, private)  # the validator agrees now (config left unused)

    second = await scaler.run_round()
    assert second.error is None
    deployed = [o for o in second.outcomes if o.placement.chute_id == private]
    assert [o.result for o in deployed] == ["deployed"], second.outcomes
    assert "public_footprint" not in await command(miner, "why", private)


async def test_a_refused_launch_is_not_asked_again_every_round(miner: Miner) -> None:
    chute = miner.launch_chute()
    chute_id = chute["chute_id"]
    scaler = autoscaler(miner, {chute_id})
    # A 403 gepetto has no rule for (the validator has more than we model).
    miner.world.validator.inject_fault("launch_config", Fault(status=403))
    first = await scaler.run_round()
    assert first.outcomes and {o.result for o in first.outcomes} == {"failed"}, first.outcomes
    asked = launch_requests(miner, chute_id)
    assert asked >= 1
    miner.world.validator.clear_faults()

    again = await scaler.run_round()
    assert again.outcomes == [] and launch_requests(miner, chute_id) == asked
    assert again.plan is not None
    decision = again.plan.decisions[chute_id]
    assert decision.rejection is not None
    assert decision.rejection.reason is Reason.LAUNCH_REFUSED
    assert "HTTP 403" in decision.rejection.detail
    why = await command(miner, "why", chute_id)
    assert "launch_refused" in why and "HTTP 403" in why, why
    # the refusal is no failure: no back-off, the GPUs were all given back
    assert await miner.rt.inventory.list_deployments() == []
    assert "(0 active)" in await command(miner, "backoff")

    # The operator clears the back-off of the chute: the hold goes with it (the hold also ends
    # by itself after `launch_refusal_cooldown`, see tests/unit/scheduling).
    cleared = await execute(
        ["backoff", "clear", "-c", chute_id], cli_caller("operator"), miner.rt, confirmed=True
    )
    assert "forgave" in render_text(cleared)
    later = await scaler.run_round()
    assert later.count("deployed") >= 1, later.outcomes
    assert launch_requests(miner, chute_id) > asked


async def test_a_job_we_already_tried_is_not_asked_for_again(miner: Miner) -> None:
    """The validator refuses (403) a miner a job it already tried; the job is then dropped for
    good, and the chute's ordinary scaling goes on."""
    chute = miner.launch_chute()
    chute_id = chute["chute_id"]
    job = miner.world.validator.create_job(chute_id)
    job["miner_history"].append(MINER)  # an earlier attempt of ours, as after a crashed pod
    scaler = autoscaler(miner, {chute_id})

    def job_requests() -> int:
        return sum(
            1
            for r in miner.world.validator.requests
            if r.path == "/instances/launch_config" and r.query.get("job_id") == job["job_id"]
        )

    first = await scaler.run_round()
    tried = [o for o in first.outcomes if o.placement.job_id == job["job_id"]]
    assert [o.result for o in tried] == ["failed"] and "403" in tried[0].detail, first.outcomes
    assert job_requests() == 1

    again = await scaler.run_round()
    assert again.error is None and again.plan is not None
    assert all(p.job_id is None for p in again.plan.placements)
    assert job_requests() == 1
    decision = again.plan.decisions[chute_id]
    assert decision.rejection is None or decision.rejection.reason is not Reason.LAUNCH_REFUSED
