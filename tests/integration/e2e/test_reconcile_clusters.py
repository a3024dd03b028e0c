"""Reconcile and undeploy over several clusters (the services on a Cluster double that poses
as one cluster per server over the real cluster sandbox, with real PostgreSQL and the
validator sandbox): the delete preflight defers, `recycle --dry-run` shows its verdict, a
cluster that cannot be read keeps everything on it, and a deleted server or chute waits for
its deferred undeploy."""

from __future__ import annotations

import pytest

from gepetto_core.commands import Caller, execute
from gepetto_core.errors import ClusterNotFoundError, ConflictError, ValidatorError
from gepetto_core.models.events import EventReason, MinerEvent
from gepetto_core.render_text import render_text
from gepetto_core.scheduling.reconcile_actions import DeleteChute, RemoveDeployment, RemoveServer
from gepetto_core.services.deployer import DeployRequest
from gepetto_core.services.event_handlers import CHUTE_DELETED_REASON, SERVER_DELETED_REASON
from gepetto_core.views import Composite, Message, PlanView, Table
from gepetto_sandbox.validator.faults import Fault
from tests.integration.cluster_double import SplitCluster, split_runtime_cluster

from .conftest import Miner, eventually

OPERATOR = Caller(actor="cli:ops", source="cli", role="admin")
VETO = "cluster gpu-3 unreachable"


def split(miner: Miner) -> SplitCluster:
    return split_runtime_cluster(miner.rt, [node.name for node in miner.world.fleet])


async def deployed(miner: Miner, nth_server: int = 0) -> tuple[str, str, str]:
    """One deployment with its validator instance up, on the `nth_server` that fits its chute:
    (deployment id, server id, server name)."""
    chute = miner.launch_chute()
    selector = chute["node_selector"]
    fitting = [
        n.uid
        for n in miner.world.fleet
        if not n.tee
        and n.gpu_type in selector["supported_gpus"]
        and n.gpu_count >= selector["gpu_count"]
    ]
    server_id = fitting[nth_server]
    made = await miner.rt.deployer.deploy(DeployRequest(chute["chute_id"], server_id))
    row = made.deployment

    async def instance_up() -> bool:
        return any(
            i.get("config_id") == row.config_id
            for i in miner.world.validator.world.instances.values()
        )

    await eventually(instance_up)
    await miner.rt.reconciler.run_once()  # learns the instance id from the launch config
    name = next(n.name for n in miner.world.fleet if n.uid == server_id)
    return row.deployment_id, server_id, name


async def job_removed(miner: Miner, deployment_id: str) -> bool:
    """The deployment's Job is gone or going."""
    try:
        job = await miner.rt.cluster.get_chute_job(deployment_id)
    except ClusterNotFoundError:
        return True
    return job.deleting


def instances(miner: Miner) -> set[str]:
    return set(miner.world.validator.world.instances)


async def test_a_vetoed_undeploy_leaves_row_instance_and_objects(miner: Miner) -> None:
    cluster = split(miner)
    deployment_id, server_id, _ = await deployed(miner)
    row = await miner.rt.inventory.get_deployment(deployment_id)
    assert row is not None and row.instance_id in instances(miner)
    cluster.vetoes[deployment_id] = VETO

    result = await miner.rt.deployer.undeploy(deployment_id, "operator")
    assert result.deferred == VETO and not result.was_present
    assert result.warnings == [f"deferred: {VETO}"]
    assert cluster.preflights == [(deployment_id, server_id)]
    assert await miner.rt.inventory.get_deployment(deployment_id) == row
    assert row.instance_id in instances(miner)
    job = await miner.rt.cluster.get_chute_job(deployment_id)
    assert not job.deleting
    gpus = await miner.rt.inventory.list_gpus(server_id)
    assert sum(g.deployment_id == deployment_id for g in gpus) > 0  # still claimed

    # the veto lifted, the same call removes everything
    del cluster.vetoes[deployment_id]
    result = await miner.rt.deployer.undeploy(deployment_id, "operator")
    assert result.deferred is None and result.was_present
    assert await miner.rt.inventory.get_deployment(deployment_id) is None
    assert row.instance_id not in instances(miner)
    assert await job_removed(miner, deployment_id)


async def test_reconcile_reports_a_vetoed_removal_as_not_done_and_retries(miner: Miner) -> None:
    cluster = split(miner)
    deployment_id, _, _ = await deployed(miner)
    await miner.rt.cluster.undeploy(deployment_id, wait_seconds=30)  # behind gepetto's back
    cluster.vetoes[deployment_id] = VETO

    report = await miner.rt.reconciler.run_once()
    [result] = [r for r in report.results if isinstance(r.action, RemoveDeployment)]
    assert not result.ok and result.deferred == VETO and result.detail == f"deferred: {VETO}"
    assert await miner.rt.inventory.get_deployment(deployment_id) is not None

    del cluster.vetoes[deployment_id]
    report = await miner.rt.reconciler.run_once()
    [result] = [r for r in report.results if isinstance(r.action, RemoveDeployment)]
    assert result.ok and await miner.rt.inventory.get_deployment(deployment_id) is None


async def test_recycle_dry_run_shows_the_preflight_verdict(miner: Miner) -> None:
    cluster = split(miner)
    vetoed, _, _ = await deployed(miner)
    allowed, _, _ = await deployed(miner, nth_server=1)  # another cluster (one each: no guard)
    for deployment_id in (vetoed, allowed):  # both Jobs gone behind gepetto's back
        await miner.rt.cluster.undeploy(deployment_id, wait_seconds=30)
    cluster.vetoes[vetoed] = VETO

    view = await execute("recycle --dry-run", OPERATOR, miner.rt)
    assert isinstance(view, PlanView)
    [shown_vetoed] = [s for s in view.steps if vetoed in s]
    [shown_allowed] = [s for s in view.steps if allowed in s]
    assert shown_vetoed.endswith(f"— deferred: {VETO}")
    assert "deferred" not in shown_allowed
    assert view.facts["deferred"] == 1
    assert f"deferred: {VETO}" in render_text(view)
    # a dry run changes nothing
    assert await miner.rt.inventory.get_deployment(vetoed) is not None
    assert await miner.rt.inventory.get_deployment(allowed) is not None


async def test_nothing_on_an_unreachable_cluster_is_removed(miner: Miner) -> None:
    """The server's cluster cannot be read: its deployment (whose Job the reading lacks) and
    the server itself stay; once it is read again, nothing needs removing."""
    cluster = split(miner)
    deployment_id, server_id, name = await deployed(miner)
    cluster.down[name] = "timed out"

    report = await miner.rt.reconciler.run_once()
    assert report.plan.destructive == []
    assert any(f"{name}: timed out" in p for p in report.plan.problems)
    assert await miner.rt.inventory.get_deployment(deployment_id) is not None
    assert await miner.rt.inventory.get_server(server_id) is not None

    del cluster.down[name]
    report = await miner.rt.reconciler.run_once()
    assert report.plan.destructive == [] and report.plan.complete
    assert await miner.rt.inventory.get_deployment(deployment_id) is not None


async def test_the_operators_undeploy_shows_the_deferral(miner: Miner) -> None:
    cluster = split(miner)
    deployment_id, _, _ = await deployed(miner)
    cluster.vetoes[deployment_id] = VETO
    outcome = await execute(f"undeploy -i {deployment_id}", OPERATOR, miner.rt, confirmed=True)
    assert isinstance(outcome, Composite)
    table, message = outcome.items
    assert isinstance(table, Table) and isinstance(message, Message)
    [row] = table.rows
    assert row["removed"] is False and row["warnings"] == f"deferred: {VETO}"
    assert message.level == "warning" and message.text == "removed 0 of 1"
    assert f"deferred: {VETO}" in render_text(outcome)
    assert await miner.rt.inventory.get_deployment(deployment_id) is not None


async def test_a_cluster_that_lost_its_jobs_waits_for_force(miner: Miner) -> None:
    """Both Jobs of one server's cluster vanish from its listing at once: held back, with the
    cluster named; `recycle --force` removes them."""
    split(miner)
    first, _, name = await deployed(miner)
    second, _, _ = await deployed(miner)
    for deployment_id in (first, second):
        await miner.rt.cluster.undeploy(deployment_id, wait_seconds=30)

    report = await miner.rt.reconciler.run_once()
    assert report.plan.of_type(RemoveDeployment) == []
    assert any(f"cluster {name}: 2 of 2" in p for p in report.plan.problems)
    assert await miner.rt.inventory.get_deployment(first) is not None

    report = await miner.rt.reconciler.run_once(force=True)
    removed = {
        r.action.deployment_id
        for r in report.results
        if r.ok and isinstance(r.action, RemoveDeployment)
    }
    assert removed == {first, second}
    assert await miner.rt.inventory.get_deployment(first) is None


async def test_nodes_shows_each_clusters_health(miner: Miner) -> None:
    cluster = split(miner)
    down, up = sorted(cluster.names)[:2]
    cluster.down[down] = "timed out"
    table = await execute("nodes", OPERATOR, miner.rt)
    assert isinstance(table, Table)
    rows = {r["node"]: r for r in table.rows}
    assert rows[down]["status"] == "unknown" and rows[down]["cluster"] == "unreachable: timed out"
    assert rows[down]["disk_total_gb"] is None
    assert rows[up]["status"] == "Ready" and rows[up]["cluster"] == "reachable"
    assert rows[up]["data_age"] == 2.0 and rows[up]["disk_total_gb"] is not None
    assert table.note is not None and f"1 unreachable ({down})" in table.note


async def test_a_deleted_server_waits_locked_for_its_deferred_undeploy(miner: Miner) -> None:
    """The validator deletes a server while its deployment's removal is vetoed: the server row
    (in the multi-cluster layout, the way to its cluster) stays, locked, until reconcile has
    removed the deployment; then it goes."""
    cluster = split(miner)
    deployment_id, server_id, name = await deployed(miner)
    cluster.vetoes[deployment_id] = VETO
    inv = miner.rt.inventory

    deleted = MinerEvent(reason=EventReason.SERVER_DELETED, data={"server_id": server_id})
    await miner.rt.handlers(deleted)
    server = await inv.get_server(server_id)
    assert server is not None and server.locked
    assert await inv.get_deployment(deployment_id) is not None
    assert await miner.rt.state.list_server_removals() == {server_id: SERVER_DELETED_REASON}
    nodes = await execute("nodes", OPERATOR, miner.rt)
    assert isinstance(nodes, Table) and nodes.note is not None
    assert f"to be removed once their deployments are (recycle): {name}" in nodes.note

    report = await miner.rt.reconciler.run_once()  # still vetoed: nothing goes
    [result] = [r for r in report.results if isinstance(r.action, RemoveServer)]
    assert result.deferred == VETO and await inv.get_server(server_id) is not None

    del cluster.vetoes[deployment_id]
    report = await miner.rt.reconciler.run_once()
    [result] = [r for r in report.results if isinstance(r.action, RemoveServer)]
    assert result.ok and await inv.get_server(server_id) is None
    assert await inv.get_deployment(deployment_id) is None
    assert await miner.rt.state.list_server_removals() == {}
    assert await job_removed(miner, deployment_id)


async def test_a_deleted_chute_waits_for_its_deferred_undeploy(miner: Miner) -> None:
    """The validator deletes a chute while its deployment's removal is vetoed: the chute row
    stays (deleting it would drop the deployment's row with it), nothing new is deployed of it,
    and reconcile removes the deployment through the deployer (its ledger entry closed), then
    the chute."""
    cluster = split(miner)
    deployment_id, server_id, _ = await deployed(miner)
    inv, state = miner.rt.inventory, miner.rt.state
    row = await inv.get_deployment(deployment_id)
    assert row is not None
    chute_id = row.chute_id
    cluster.vetoes[deployment_id] = VETO

    deleted = MinerEvent(reason=EventReason.CHUTE_DELETED, data={"chute_id": chute_id})
    await miner.rt.handlers(deleted)
    assert await inv.get_chute(chute_id) is not None
    assert await inv.get_deployment(deployment_id) is not None
    assert await state.list_chute_removals() == {chute_id: CHUTE_DELETED_REASON}
    with pytest.raises(ConflictError, match=CHUTE_DELETED_REASON):
        await miner.rt.deployer.deploy(DeployRequest(chute_id, server_id))

    report = await miner.rt.reconciler.run_once()  # still vetoed: nothing goes
    [result] = [r for r in report.results if isinstance(r.action, DeleteChute)]
    assert result.deferred == VETO and await inv.get_chute(chute_id) is not None

    del cluster.vetoes[deployment_id]
    report = await miner.rt.reconciler.run_once()
    [result] = [r for r in report.results if isinstance(r.action, DeleteChute)]
    assert result.ok and await inv.get_chute(chute_id) is None
    assert await inv.get_deployment(deployment_id) is None
    assert await state.list_chute_removals() == {}
    [entry] = [e for e in await state.list_ledger() if e.deployment_id == deployment_id]
    assert entry.ended_at is not None and not entry.counts_as_failure
    assert await job_removed(miner, deployment_id)


async def test_pods_names_the_clusters_it_could_not_read(miner: Miner) -> None:
    cluster = split(miner)
    deployment_id, _, name = await deployed(miner)
    listed = await execute("pods", OPERATOR, miner.rt)
    assert isinstance(listed, Table) and listed.note is None
    assert any(deployment_id in str(row["name"]) for row in listed.rows)

    cluster.down[name] = "timed out"
    listed = await execute("pods", OPERATOR, miner.rt)
    assert isinstance(listed, Table)
    assert listed.note == f"1 cluster(s) not read, their pods are not listed: {name}: timed out"
    assert not any(row["node"] == name for row in listed.rows)


async def test_a_deleted_server_the_validator_cannot_forget_yet_waits_for_it(
    miner: Miner,
) -> None:
    """The operator deletes a server while the validator answers 503: nothing is lost, the row
    stays locked with its removal request, and reconcile deregisters and removes it later."""
    _, server_id, _ = await deployed(miner)
    inv, validator = miner.rt.inventory, miner.world.validator
    gpu_ids = {g.gpu_id for g in await inv.list_gpus(server_id)}
    validator.inject_fault("delete_node", Fault(status=503))

    deleted = MinerEvent(reason=EventReason.SERVER_DELETED, data={"server_id": server_id})
    with pytest.raises(ValidatorError):
        await miner.rt.handlers(deleted)
    server = await inv.get_server(server_id)
    assert server is not None and server.locked
    assert await miner.rt.state.list_server_removals() == {server_id: SERVER_DELETED_REASON}
    assert gpu_ids <= set(validator.world.nodes)

    validator.faults.clear()
    report = await miner.rt.reconciler.run_once()
    [result] = [r for r in report.results if isinstance(r.action, RemoveServer)]
    assert result.ok and await inv.get_server(server_id) is None
    assert not gpu_ids & set(validator.world.nodes)
