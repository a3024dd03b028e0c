"""Each miner event reason against real PostgreSQL and the sandboxes, and malformed payloads."""

from __future__ import annotations

from typing import Any

import pytest

from gepetto_core.errors import InvalidInputError
from gepetto_core.models.events import EventReason, MinerEvent
from gepetto_core.services.deployer import DeployRequest, DeployResult
from gepetto_core.services.event_handlers import EventHandlers
from tests.support.fleet_layouts import in_every_layout

from .conftest import Miner, eventually


def event(m: Miner, reason: EventReason, **data: Any) -> MinerEvent:
    return MinerEvent(reason=reason, validator=m.world.validator.hotkey, data=data)


async def deployed(m: Miner, *, job_id: str | None = None) -> tuple[dict[str, Any], DeployResult]:
    chute = m.launch_chute()
    result = await m.rt.deployer.deploy(
        DeployRequest(chute["chute_id"], m.server_for(chute), job_id=job_id)
    )
    return chute, result


async def test_instance_lifecycle_events(miner: Miner) -> None:
    chute, result = await deployed(miner)
    d = result.deployment
    ours = miner.rt.miner_hotkey
    h = miner.rt.handlers
    # another miner's event changes nothing
    await h(
        event(
            miner,
            EventReason.INSTANCE_CREATED,
            instance_id="x",
            config_id=d.config_id,
            miner_hotkey="5SomeoneElse",
        )
    )
    assert (await miner.rt.inventory.get_deployment(d.deployment_id)).instance_id is None  # type: ignore[union-attr]

    await h(
        event(
            miner,
            EventReason.INSTANCE_CREATED,
            instance_id="inst-1",
            config_id=d.config_id,
            chute_id=chute["chute_id"],
            miner_hotkey=ours,
        )
    )
    await h(event(miner, EventReason.INSTANCE_VERIFIED, instance_id="inst-1", miner_hotkey=ours))
    row = await miner.rt.inventory.get_deployment(d.deployment_id)
    assert row is not None and row.instance_id == "inst-1" and row.verified_at and not row.active
    await h(
        event(
            miner,
            EventReason.INSTANCE_ACTIVATED,
            instance_id="inst-1",
            config_id=d.config_id,
            chute_id=chute["chute_id"],
            miner_hotkey=ours,
        )
    )
    row = await miner.rt.inventory.get_deployment(d.deployment_id)
    assert row is not None and row.active and row.activated_at and not row.stub

    await h(
        event(
            miner,
            EventReason.INSTANCE_DELETED,
            instance_id="inst-1",
            chute_id=chute["chute_id"],
            miner_hotkey=ours,
        )
    )
    assert await miner.rt.inventory.get_deployment(d.deployment_id) is None
    [entry] = await miner.rt.state.list_ledger()
    assert entry.counts_as_failure  # the validator removed it: the 16-minute rule applies


async def test_chute_created_updated_and_deleted(miner: Miner) -> None:
    chute, first = await deployed(miner)
    cid, old_version = chute["chute_id"], chute["version"]
    inv, h = miner.rt.inventory, miner.rt.handlers
    # an operator's ban survives an update (upstream cleared it)
    local = await inv.get_chute(cid)
    assert local is not None
    await inv.upsert_chute(local.model_copy(update={"ban_reason": "flaky"}))
    new_version = miner.world.validator.update_chute(cid, code="print('v2')")
    await h(event(miner, EventReason.CHUTE_UPDATED, chute_id=cid, version=new_version))
    updated = await inv.get_chute(cid)
    assert updated is not None
    assert (updated.version, updated.code, updated.ban_reason) == (
        new_version,
        "print('v2')",
        "flaky",
    )
    # the old version deleted: its deployment goes, the chute (now at the new version) stays
    await h(event(miner, EventReason.CHUTE_DELETED, chute_id=cid, version=old_version))
    assert await inv.get_deployment(first.deployment.deployment_id) is None
    assert await inv.get_chute(cid) == updated

    await inv.delete_chute(cid)  # cascades the deployment row (as upstream's FK does)
    await h(event(miner, EventReason.CHUTE_CREATED, chute_id=cid, version=new_version))
    assert (await inv.get_chute(cid)) is not None

    d2 = await miner.rt.deployer.deploy(DeployRequest(cid, miner.server_for(chute)))
    await h(event(miner, EventReason.CHUTE_DELETED, chute_id=cid, version=new_version))
    assert await inv.get_chute(cid) is None
    assert await inv.get_deployment(d2.deployment.deployment_id) is None
    jobs = miner.cluster.objects(
        "jobs", "chutes", f"chutes/deployment-id={d2.deployment.deployment_id}"
    )
    assert all(j["metadata"].get("deletionTimestamp") for j in jobs)


async def test_image_events(miner: Miner) -> None:
    chute = miner.launch_chute()
    h = miner.rt.handlers
    await h(
        event(
            miner,
            EventReason.IMAGE_UPDATED,
            image_id="img",
            chute_ids=[chute["chute_id"]],
            image="alice/llama:2-p7",
            chutes_version="0.3.70",
        )
    )
    row = await miner.rt.inventory.get_chute(chute["chute_id"])
    assert row is not None and (row.image, row.chutes_version) == ("alice/llama:2-p7", "0.3.70")
    await h(event(miner, EventReason.IMAGE_CREATED, image_id="img"))
    await h(event(miner, EventReason.IMAGE_DELETED, image_id="img"))


@in_every_layout
async def test_rolling_update_redeploys_on_the_same_server(miner: Miner) -> None:
    chute, result = await deployed(miner)
    d = result.deployment
    await miner.rt.inventory.update_deployment(d.deployment_id, instance_id="inst-r")
    new_version = miner.world.validator.update_chute(chute["chute_id"], code="print('r2')")
    await miner.rt.handlers(
        event(
            miner,
            EventReason.ROLLING_UPDATE,
            chute_id=chute["chute_id"],
            instance_id="inst-r",
            old_version=chute["version"],
            new_version=new_version,
            miner_hotkey=miner.rt.miner_hotkey,
        )
    )
    [replacement] = await miner.rt.inventory.list_deployments()
    assert replacement.deployment_id != d.deployment_id
    assert (replacement.server_id, replacement.version) == (d.server_id, new_version)


@in_every_layout
async def test_job_events(miner: Miner) -> None:
    chute = miner.launch_chute()
    job = miner.world.validator.create_job(chute["chute_id"])
    h = miner.rt.handlers
    # excluded (the validator's key is `exclude`; upstream read `excluded`)
    await h(
        event(
            miner,
            EventReason.JOB_CREATED,
            job_id=job["job_id"],
            chute_id=chute["chute_id"],
            exclude=[miner.rt.miner_hotkey],
        )
    )
    assert await miner.rt.inventory.list_deployments() == []
    # a re-published job without disk_gb still deploys (upstream raised KeyError)
    await h(event(miner, EventReason.JOB_CREATED, job_id=job["job_id"], chute_id=chute["chute_id"]))
    [d] = await miner.rt.inventory.list_deployments()
    assert d.job_id == job["job_id"]
    job_objects = miner.cluster.objects("jobs", "chutes", f"chutes/job-id={job['job_id']}")
    assert job_objects
    await h(event(miner, EventReason.JOB_DELETED, job_id=job["job_id"], instance_id="x"))
    assert await miner.rt.inventory.list_deployments() == []


async def test_bounty_change_wakes_the_autoscaler_only_without_a_deployment(miner: Miner) -> None:
    woken: list[str] = []

    async def wake(why: str) -> None:
        woken.append(why)

    rt = miner.rt
    h = EventHandlers(
        rt.miner_hotkey, rt.inventory, rt.deployer, rt.validators, rt.state, wake=wake
    )
    chute, _ = await deployed(miner)
    await h(event(miner, EventReason.BOUNTY_CHANGE, chute_id=chute["chute_id"], bounty=100))
    assert woken == []
    await h(event(miner, EventReason.BOUNTY_CHANGE, chute_id="some-other-chute", bounty=100))
    assert woken == ["bounty on some-other-chute"]


@in_every_layout
async def test_gpu_and_server_events(miner: Miner) -> None:
    chute, result = await deployed(miner)
    inv, h = miner.rt.inventory, miner.rt.handlers
    server_id = result.deployment.server_id
    free = next(g for g in await inv.list_gpus(server_id) if g.deployment_id is None)
    await inv.set_gpu_verified(free.gpu_id, False)
    await h(
        MinerEvent(
            reason=EventReason.GPU_VERIFIED,
            validator=miner.world.validator.hotkey,
            data={"gpu_id": free.gpu_id, "miner_hotkey": miner.rt.miner_hotkey},
        )
    )
    assert next(g for g in await inv.list_gpus() if g.gpu_id == free.gpu_id).verified

    validator = miner.world.validator
    claimed = result.gpus[0]
    await h(MinerEvent(reason=EventReason.GPU_DELETED, data={"gpu_id": claimed.gpu_id}))
    assert await inv.get_deployment(result.deployment.deployment_id) is None
    assert claimed.gpu_id not in {g.gpu_id for g in await inv.list_gpus()}
    assert claimed.gpu_id not in validator.world.nodes  # deregistered, as upstream does

    again = await miner.rt.deployer.deploy(DeployRequest(chute["chute_id"], server_id))
    gpu_ids = [g.gpu_id for g in await inv.list_gpus(server_id)]
    await h(MinerEvent(reason=EventReason.SERVER_DELETED, data={"server_id": server_id}))
    assert await inv.get_server(server_id) is None
    assert await inv.get_deployment(again.deployment.deployment_id) is None
    # the validator forgets the server: as a whole in the multi-cluster layout, GPU by GPU in
    # the single one (upstream's two handlers)
    deletes = [r.path for r in validator.requests if r.method == "DELETE"]
    if miner.layout == "single":
        assert [f"/nodes/{g}" for g in gpu_ids] == [p for p in deletes if p.startswith("/nodes/")][
            1:
        ]
        assert server_id in validator.world.servers
    else:
        assert f"/servers/{server_id}" in deletes and server_id not in validator.world.servers
    assert not set(gpu_ids) & set(validator.world.nodes)
    if miner.layout != "single":
        # the server's agent was told to stop, signed by the miner (upstream's handler); in
        # the direct layout no agent runs there, so it answers as one that never started
        name = next(node.name for node in miner.world.fleet if node.uid == server_id)
        stops = [r for r in miner.clusters.agent_front.requests if r.path == "/monitor/stop"]
        assert [(r.cluster, r.hotkey) for r in stops] == [(name, miner.rt.miner_hotkey)]
        if miner.layout == "multi-monitor":
            assert stops[0].status == 200 and miner.monitored.agents[name].state == "stopped"
            assert not await miner.monitored.redis.exists(f"clusters:{name}:health")
        else:
            assert stops[0].status == 409

    async def job_gone() -> bool:  # upstream left the Job running; we delete it
        return not miner.cluster.objects(
            "jobs", "chutes", f"chutes/deployment-id={again.deployment.deployment_id}"
        )

    await eventually(job_gone)


@pytest.mark.parametrize(
    "reason",
    [r for r in EventReason if r not in (EventReason.IMAGE_CREATED, EventReason.IMAGE_DELETED)],
)
async def test_malformed_payloads_are_refused_clearly(miner: Miner, reason: EventReason) -> None:
    before = await miner.rt.inventory.list_deployments()
    with pytest.raises(InvalidInputError, match=reason.value):
        await miner.rt.handlers(event(miner, reason))
    assert await miner.rt.inventory.list_deployments() == before


async def test_events_from_an_unknown_validator_are_ignored(miner: Miner) -> None:
    chute, result = await deployed(miner)
    await miner.rt.handlers(
        MinerEvent(
            reason=EventReason.CHUTE_DELETED,
            validator="5NotOurValidator",
            data={"chute_id": chute["chute_id"], "version": chute["version"]},
        )
    )
    assert await miner.rt.inventory.get_deployment(result.deployment.deployment_id) is not None
