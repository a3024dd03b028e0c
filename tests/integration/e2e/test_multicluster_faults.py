"""Faults of the multi-cluster layout, end to end (issue #24's must-show list): each server is its
own sandbox cluster behind real HTTPS, gepetto runs as `serve` builds it, on real PostgreSQL.

- a cluster refusing connections and one hanging past its timeout during reconcile: nothing
  on them is removed, the other clusters are reconciled, one grouped alert;
- a kubeconfig rotated in the database: the client is rebuilt, no restart;
- a cluster lost in the middle of a deploy: rolled back, GPUs freed;
- the monitor cache stale or missing a Job: the delete preflight vetoes the removal, and
  `recycle --dry-run` says why;
- the monitor's Redis restarted (empty): the cache source recovers.

Waits are for conditions (`eventually`), never for an amount of time; the per-cluster timeout
is small so a hanging cluster costs little."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gepetto_core import kube_objects as ko
from gepetto_core.commands import cli_caller, execute
from gepetto_core.errors import ClusterError
from gepetto_core.models.validator import is_launch_config_version
from gepetto_core.render_text import render_text
from gepetto_core.scheduling.cluster_alerts import cluster_health_alerts
from gepetto_core.scheduling.reconcile_actions import DeleteService, RemoveDeployment
from gepetto_core.services.deployer import DeployRequest
from gepetto_core.services.reconcile_service import ReconcileReport
from gepetto_sandbox.cluster import FleetNode
from gepetto_sandbox.multicluster import PrivateRedis, cache
from tests.support.fleet_layouts import MULTI_LAYOUTS

from .conftest import Miner, eventually


@pytest.fixture
def cluster_timeout() -> float:
    """Small: a hanging cluster costs one of these per read, and the test waits for it."""
    return 1.0


def chute_for(m: Miner, node: FleetNode) -> dict[str, Any]:
    """A public launch-config chute that fits `node`, the fewest GPUs first, with room at the
    validator."""
    fitting = [
        c
        for c in m.world.validator.world.chutes.values()
        if c["public"]
        and c["cords"]
        and not c.get("tee")
        and is_launch_config_version(c["chutes_version"])
        and node.gpu_type in c["node_selector"]["supported_gpus"]
        and node.gpu_count >= c["node_selector"]["gpu_count"]
    ]
    assert fitting, f"no chute of the catalog fits {node.name}"
    chute = min(fitting, key=lambda c: (c["node_selector"]["gpu_count"], c["chute_id"]))
    m.world.validator.set_target(chute["chute_id"], 20)
    return chute


def nodes(m: Miner) -> list[FleetNode]:
    return [n for n in m.world.fleet if not n.tee]


async def deploy_on(m: Miner, node: FleetNode) -> str:
    result = await m.rt.deployer.deploy(DeployRequest(chute_for(m, node)["chute_id"], node.uid))
    return result.deployment.deployment_id


async def instances_up(m: Miner, *deployment_ids: str) -> dict[str, str]:
    """Wait until the validator lists an instance of each deployment (its pod claimed its
    launch config); deployment id -> instance id."""

    async def listed() -> dict[str, str]:
        by_config = {
            i.get("config_id"): i["instance_id"]
            for i in m.world.validator.world.instances.values()
            if i["miner_hotkey"] == m.rt.miner_hotkey
        }
        found = {}
        for d in deployment_ids:
            row = await m.rt.inventory.get_deployment(d)
            assert row is not None, d
            if row.config_id not in by_config:
                return {}
            found[d] = by_config[row.config_id]
        return found

    return await eventually(listed)


def jobs_in(m: Miner, cluster: str, deployment_id: str) -> list[dict[str, Any]]:
    """The deployment's Jobs in one member cluster, read from its store (so even while its API
    is down), not being deleted."""
    return [
        j
        for j in m.clusters.cluster(cluster).objects(
            "jobs", "chutes", f"chutes/deployment-id={deployment_id}"
        )
        if not j["metadata"].get("deletionTimestamp")
    ]


async def rows(m: Miner) -> set[str]:
    return {d.deployment_id for d in await m.rt.inventory.list_deployments()}


async def go_dark(m: Miner, refusing: FleetNode, hanging: FleetNode) -> list[ReconcileReport]:
    """One cluster refuses connections, another hangs; reconcile passes until gepetto sees
    both unreachable (the reports of every pass). Direct: the first pass, which costs one
    per-cluster timeout for the hanging one. Monitor: both servers go dark, agents included;
    the monitor calls them unhealthy once their heartbeats are missing for two intervals."""
    if m.layout == "multi-direct":
        await m.clusters.stop_api(refusing.name)
        m.clusters.hang_api(hanging.name)
    else:
        await m.clusters.lose_cluster(refusing.name)
        m.clusters.hang_api(hanging.name)
        await m.monitored.agents[hanging.name].kill()  # a hung server's agent is silent
    reports: list[ReconcileReport] = []

    async def both_unreachable() -> bool:
        reports.append(await m.rt.reconciler.run_once())
        health = {h.name: h.state for h in reports[-1].health}
        return health[refusing.name] == health[hanging.name] == "unreachable"

    await eventually(both_unreachable)
    return reports


async def come_back(m: Miner, refusing: FleetNode, hanging: FleetNode) -> ReconcileReport:
    """Both clusters answer again; the first pass that reads every cluster."""
    m.clusters.release_api(hanging.name)
    if m.layout == "multi-direct":
        await m.clusters.start_api(refusing.name)
    else:
        await m.clusters.recover_cluster(refusing.name)
        await m.monitored.agents[hanging.name].start(register=False)
    report = None

    async def all_reachable() -> bool:
        nonlocal report
        if m.layout == "multi-monitor":
            await m.monitored.heartbeat_all()  # `starting` (after the resync) -> `active`
        report = await m.rt.reconciler.run_once()
        return {h.state for h in report.health} == {"reachable"}

    await eventually(all_reachable)
    assert report is not None
    return report


@pytest.mark.parametrize("layout", MULTI_LAYOUTS)
async def test_a_refusing_and_a_hanging_cluster_lose_nothing_while_the_rest_is_reconciled(
    miner: Miner,
) -> None:
    refusing, hanging, healthy, other = nodes(miner)
    on_refusing = await deploy_on(miner, refusing)
    on_hanging = await deploy_on(miner, hanging)
    kept = await deploy_on(miner, healthy)
    broken = await deploy_on(miner, healthy)
    instances = await instances_up(miner, on_refusing, on_hanging, kept, broken)
    # the broken one's Job goes behind gepetto's back: reconcile must remove that deployment
    await miner.rt.cluster.undeploy(broken, wait_seconds=60)
    miner.clock.advance(minutes=10)

    reports = await go_dark(miner, refusing, hanging)
    states = {h.name: h.state for h in reports[-1].health}
    assert states == {
        refusing.name: "unreachable",
        hanging.name: "unreachable",
        healthy.name: "reachable",
        other.name: "reachable",
    }, reports[-1].health
    # nothing on the unread clusters is removed: rows, GPUs, Jobs, validator instances
    removed = [
        a.deployment_id for r in reports for a in r.plan.actions if isinstance(a, RemoveDeployment)
    ]
    assert removed == [broken], [r.plan for r in reports]
    assert await rows(miner) == {on_refusing, on_hanging, kept}
    claimed = {g.deployment_id for g in await miner.rt.inventory.list_gpus() if g.deployment_id}
    assert {on_refusing, on_hanging} <= claimed
    assert jobs_in(miner, refusing.name, on_refusing) and jobs_in(miner, hanging.name, on_hanging)
    listed = set(miner.world.validator.world.instances)
    assert {instances[on_refusing], instances[on_hanging], instances[kept]} <= listed
    assert instances[broken] not in listed
    # one alert names both clusters, each with its reason
    memory: dict[str, bool] = {}
    alerts = []
    for report in reports:
        found, memory = cluster_health_alerts(memory, report.health)
        alerts += found
    assert [(a.kind, a.names) for a in alerts] == [
        ("unreachable", sorted([refusing.name, hanging.name]))
    ]
    reasons = dict(alerts[0].clusters)
    assert all(reasons.values()), alerts[0].text
    # a deploy to a cluster gepetto sees unreachable fails and leaves nothing behind
    with pytest.raises(ClusterError):
        await deploy_on(miner, hanging)
    assert await rows(miner) == {on_refusing, on_hanging, kept}
    assert {g.deployment_id for g in await miner.rt.inventory.list_gpus() if g.deployment_id} == {
        on_refusing,
        on_hanging,
        kept,
    }

    # both come back: one "back" alert, and nothing was lost meanwhile
    again = await come_back(miner, refusing, hanging)
    assert again.plan.complete and again.plan.destructive == [], again.plan
    back, _ = cluster_health_alerts(memory, again.health)
    assert [(a.kind, a.names) for a in back] == [("back", sorted([refusing.name, hanging.name]))]
    assert await rows(miner) == {on_refusing, on_hanging, kept}


@pytest.mark.parametrize("layout", ["multi-direct", "multi-monitor"])
async def test_a_kubeconfig_rotated_in_the_database_rebuilds_the_client_without_a_restart(
    miner: Miner,
) -> None:
    node = nodes(miner)[1]
    rt = miner.rt
    first = await deploy_on(miner, node)
    await instances_up(miner, first)  # its Job has settled (the read below is its last state)
    old_client = rt.server_clusters.get(node.name)
    new_text = miner.clusters.rotate_credentials(node.name)  # the old token now gets 401

    [server] = [s for s in await rt.inventory.list_servers() if s.server_id == node.uid]
    await rt.inventory.upsert_server(server.model_copy(update={"kubeconfig": new_text}))
    # the same process: the next read picks the new row up and rebuilds that one client
    report = await rt.reconciler.run_once()
    assert rt.server_clusters.get(node.name) is not old_client
    assert {h.name: h.state for h in report.health}[node.name] == "reachable", report.health
    assert report.plan.destructive == [], report.plan

    # writes work with the new credential: a deploy there, and an undeploy
    second = await deploy_on(miner, node)
    assert jobs_in(miner, node.name, second)
    undone = await rt.deployer.undeploy(first, "operator")
    assert undone.was_present and undone.warnings == [], undone
    assert not jobs_in(miner, node.name, first)
    assert miner.rt is rt


async def lose_mid_deploy(m: Miner, node: FleetNode) -> None:
    """A deploy on `node` whose cluster goes dark right after it created the Service, before
    the Job; it must fail and roll back."""
    chute = chute_for(m, node)
    lost = m.clusters.lose_after(node.name, "POST", r"/namespaces/chutes/services$")
    with pytest.raises(ClusterError):
        await m.rt.deployer.deploy(DeployRequest(chute["chute_id"], node.uid))
    assert lost.is_set()


async def back_and_read(m: Miner, node: FleetNode) -> None:
    """The lost cluster returns, and gepetto has read it again."""
    await m.clusters.recover_cluster(node.name)
    if m.layout == "multi-monitor":
        await m.monitored.heartbeat_all()  # `starting` (after the agent's resync) -> `active`

    async def reachable() -> bool:
        health = {h.name: h.state for h in (await m.rt.reconciler.run_once()).health}
        return health[node.name] == "reachable"

    await eventually(reachable)


@pytest.mark.parametrize("layout", ["multi-direct", "multi-monitor"])
async def test_a_cluster_lost_in_the_middle_of_a_deploy_rolls_it_back(miner: Miner) -> None:
    node = nodes(miner)[0]
    await lose_mid_deploy(miner, node)
    # rolled back: no row, no claimed GPU, no validator instance, no Job
    assert await rows(miner) == set()
    assert not [g for g in await miner.rt.inventory.list_gpus() if g.deployment_id]
    assert not [
        i
        for i in miner.world.validator.world.instances.values()
        if i["miner_hotkey"] == miner.rt.miner_hotkey
    ]
    assert miner.clusters.cluster(node.name).objects("jobs", "chutes") == []
    # once the cluster is back, the freed GPUs take a deploy again
    await back_and_read(miner, node)
    again = await deploy_on(miner, node)
    assert jobs_in(miner, node.name, again)


@pytest.mark.parametrize("layout", ["multi-direct"])
async def test_what_a_lost_cluster_kept_of_a_failed_deploy_is_removed_once_it_is_back(
    miner: Miner,
) -> None:
    node = nodes(miner)[1]
    await lose_mid_deploy(miner, node)
    # the Service the lost cluster kept is untracked (no row, no Job)
    [service] = miner.clusters.cluster(node.name).objects(
        "services", "chutes", "chutes/deployment-id"
    )
    assert service["metadata"]["labels"]["chutes/deployment-id"]
    await back_and_read(miner, node)

    # one pass plans and applies the delete (back_and_read ran passes too)
    report = await miner.rt.reconciler.run_once()
    assert report.plan.complete, report.plan.problems
    assert miner.clusters.cluster(node.name).objects("services", "chutes") == []


async def recycle_dry_run(m: Miner) -> str:
    """`recycle --dry-run` as the CLI, Slack and the demo run it (in this process: its
    reconciler remembers since when an instance is missing, on the test's clock)."""
    result = await execute("recycle --dry-run", cli_caller("operator"), m.rt)
    return render_text(result)


@pytest.mark.parametrize("layout", ["multi-monitor"])
@pytest.mark.parametrize(
    ("cache_fault", "planned"),
    [
        # the cache serves an old version of the Job; the removal is planned for another
        # reason (the validator dropped the instance)
        ("stale", "validator no longer lists the instance"),
        # the cache lost the Job: reconcile believes it gone
        ("missing", "job is gone from the cluster"),
    ],
)
async def test_a_stale_or_incomplete_monitor_cache_vetoes_the_delete(
    miner: Miner, cache_fault: str, planned: str
) -> None:
    node = nodes(miner)[2]
    deployment_id = await deploy_on(miner, node)
    instance_id = (await instances_up(miner, deployment_id))[deployment_id]
    job = f"chute-{deployment_id}"
    monitor = miner.monitored.monitor

    async def cached_and_read() -> bool:  # the cache has the Job and gepetto has read it
        reading = await miner.rt.cluster.read_fleet()
        return any(j.deployment_id == deployment_id for j in reading.jobs or [])

    await eventually(cached_and_read)
    await miner.rt.reconciler.run_once()  # the row learns its instance
    row = await miner.rt.inventory.get_deployment(deployment_id)
    assert row is not None and row.instance_id == instance_id, row
    # a reason to remove it: the validator no longer lists its instance (past the grace)
    miner.world.validator.world.remove_instance(instance_id)
    await miner.rt.reconciler.run_once()
    miner.clock.advance(minutes=10)
    if cache_fault == "stale":
        await monitor.serve_stale(node.name, "job", "chutes", job, resource_version="1")
    else:
        assert await monitor.drop_cached(node.name, "job", "chutes", job)

    # reconcile plans the removal; the preflight defers it, touching nothing
    report = await miner.rt.reconciler.run_once()
    [removal] = [r for r in report.results if isinstance(r.action, RemoveDeployment)]
    assert removal.action.reason == planned, removal
    assert removal.deferred and not removal.ok, removal
    assert deployment_id in await rows(miner) and jobs_in(miner, node.name, deployment_id)

    # `recycle --dry-run` shows the removal and why it would wait
    out = await recycle_dry_run(miner)
    [line] = [ln for ln in out.splitlines() if deployment_id in ln]
    assert planned in line and "deferred: " in line, out

    # the operator's undeploy is deferred the same way
    undone = await miner.rt.deployer.undeploy(deployment_id, "operator")
    assert undone.deferred and not undone.was_present, undone
    assert deployment_id in await rows(miner) and jobs_in(miner, node.name, deployment_id)


@pytest.mark.parametrize("layout", MULTI_LAYOUTS)
async def test_an_undeploy_from_a_fresh_process_is_not_deferred(miner: Miner) -> None:
    """`gepetto undeploy` is a process of its own: its first look at the cluster is the
    preflight's, which must read the cluster rather than call it unknown."""
    node = nodes(miner)[0]
    deployment_id = await deploy_on(miner, node)
    await instances_up(miner, deployment_id)
    rt = await miner.restart()  # nothing read yet in this process
    result = await execute(
        f"undeploy -i {deployment_id}", cli_caller("operator"), rt, confirmed=True
    )
    assert "deferred" not in render_text(result), render_text(result)
    assert deployment_id not in await rows(miner)
    assert not jobs_in(miner, node.name, deployment_id)


@pytest.mark.parametrize("layout", ["multi-monitor"])
async def test_the_cache_source_recovers_when_the_monitors_redis_restarts_empty(
    miner: Miner, monitor_redis: PrivateRedis
) -> None:
    node = nodes(miner)[3]
    deployment_id = await deploy_on(miner, node)
    await instances_up(miner, deployment_id)
    source: Any = miner.rt.cluster_source
    first = await miner.rt.reconciler.run_once()
    assert first.plan.complete, first.plan.problems
    heard: list[Any] = []  # what the source's subscriber passes on (cluster changes)
    source.add_cluster_listener(heard.append)

    monitor_redis.restart()  # empty: no health hash, no resources
    # while the cache is empty nothing is removed: every cluster is unknown, not empty
    report = await miner.rt.reconciler.run_once()
    assert {h.state for h in report.health} <= {"unreachable", "unknown"}, report.health
    assert report.plan.destructive == [], report.plan
    assert deployment_id in await rows(miner)

    # the source's subscriber finds its way back to the channels by itself
    await eventually(lambda: _heard(heard, None, "RESUBSCRIBED"))

    # the agents' next heartbeats find no health hash: they register again with full
    # snapshots (`starting`), and the heartbeat after that makes them `active`
    async def all_reachable() -> bool:
        await miner.monitored.heartbeat_all()
        health = (await miner.rt.reconciler.run_once()).health
        return {h.state for h in health} == {"reachable"}

    await eventually(all_reachable)
    # and it hears the monitor again: a forced resync of one cluster reaches it
    await miner.monitored.monitor.mark_unhealthy(node.name, "resync after the restart")
    assert await miner.monitored.agents[node.name].heartbeat_once() == 409
    await eventually(lambda: _heard(heard, node.name, "RECONNECT"))
    await eventually(all_reachable)
    report = await miner.rt.reconciler.run_once()
    assert report.plan.complete and report.plan.destructive == [], report.plan
    reading = await miner.rt.cluster.read_fleet()
    assert deployment_id in {j.deployment_id for j in reading.jobs or []}
    # the pod-deletion wait rides on the recovered channels: an undeploy finishes cleanly
    undone = await miner.rt.deployer.undeploy(deployment_id, "operator")
    assert undone.was_present and undone.warnings == [], undone
    assert not jobs_in(miner, node.name, deployment_id)


async def _heard(heard: list[Any], cluster: str | None, kind: str) -> bool:
    return any((c.cluster, c.kind) == (cluster, kind) for c in heard)


CachedRead = Callable[[], Awaitable[dict[str, Any] | None]]


async def kept_after_delete(m: Miner, node: FleetNode, kind: str) -> tuple[str, CachedRead]:
    """A deployment on `node`, undeployed, whose Job or Service (`kind`) is back in the monitor
    cache, as a DELETED event the agent missed leaves it: (its id, a read of the cached one)."""
    deployment_id = await deploy_on(m, node)
    monitor = m.monitored.monitor
    name = ko.job_name(deployment_id) if kind == "job" else ko.service_name(deployment_id)

    async def cached() -> dict[str, Any] | None:
        return await monitor.cached(node.name, kind, "chutes", name)

    obj = await eventually(cached)
    await m.rt.deployer.undeploy(deployment_id, "operator")

    async def dropped() -> bool:
        return await cached() is None

    await eventually(dropped)
    await monitor.redis.hset(
        cache.resources_key(node.name, kind), f"chutes:{name}", json.dumps(obj)
    )
    return deployment_id, cached


@pytest.mark.parametrize("layout", ["multi-monitor"])
async def test_a_deleted_service_the_monitor_cache_kept_is_dropped_by_its_delete(
    miner: Miner,
) -> None:
    """The agent missed a Service's DELETED event, so the cache still holds a Service the
    cluster no longer has: reconcile plans its delete, the live read finds it gone, and the
    cache drops it (as upstream does after a 404), instead of a delete every pass."""
    _, cached = await kept_after_delete(miner, nodes(miner)[1], "service")

    report = await miner.rt.reconciler.run_once()
    [delete] = [r for r in report.results if isinstance(r.action, DeleteService)]
    assert delete.ok and await cached() is None
    again = await miner.rt.reconciler.run_once()
    assert not [a for a in again.plan.actions if isinstance(a, DeleteService)]


@pytest.mark.parametrize("layout", ["multi-monitor"])
async def test_a_job_found_gone_is_dropped_from_the_cache_when_the_service_listing_fails(
    miner: Miner,
) -> None:
    """The cache kept a deleted Job (a missed DELETED event). Undeploying it again reads the
    Job live (404) and the Services (500): the Job still leaves the cache; only what could not
    be read stays as it was."""
    node = nodes(miner)[1]
    deployment_id, cached = await kept_after_delete(miner, node, "job")
    member = miner.clusters.cluster(node.name)
    member.inject_api_error("/api/v1/namespaces/chutes/services$", method="GET", status=500)

    assert await miner.rt.cluster.undeploy(deployment_id, wait_seconds=0)  # nothing left
    assert [r for r in member.requests if r.path.endswith("/services") and r.status == 500]
    assert await cached() is None
