"""The reconcile planner over several clusters (multi-cluster layout): a cluster that could not
be read is unknown, never empty; the mass-removal guard counts per cluster."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gepetto_core.models.cluster import NodeView
from gepetto_core.models.inventory import Server
from gepetto_core.scheduling.reconcile_actions import (
    DeleteChute,
    MirrorState,
    PurgeInstance,
    RemoveDeployment,
    RemoveServer,
)
from gepetto_core.scheduling.reconcile_plan import (
    ReconcileInputs,
    ReconcilePolicy,
    RemoteView,
    plan_reconcile,
)

from .test_plan_reconcile import NOW, V, chute, dep, inst, job, remote_chute

# Three GPU servers, each its own cluster, with three deployments each (d1-d3 on gpu-1, ...).
SERVERS = [
    Server(
        server_id=f"s{n}",
        validator=V,
        name=f"gpu-{n}",
        ip_address=f"10.0.0.{n}",
        gpu_count=8,
        hourly_cost=2.0,
    )
    for n in (1, 2, 3)
]
NODES = [NodeView(name=s.name, server_id=s.server_id, ready=True) for s in SERVERS]
DEPLOYMENTS = [dep(i, server_id=f"s{(i - 1) // 3 + 1}") for i in range(1, 10)]


def fleet(**kw: Any) -> ReconcileInputs:
    """Everything healthy; keyword arguments replace parts of it."""
    remote = RemoteView(
        instances=kw.pop("instances", [inst(i) for i in range(1, 10)]),
        chutes=kw.pop("remote_chutes", [remote_chute()]),
        images=[],
        rolling_updates=[],
    )
    base = ReconcileInputs(
        deployments=DEPLOYMENTS,
        chutes=[chute()],
        servers=SERVERS,
        jobs=[job(i) for i in range(1, 10)],
        legacy=[],
        services=[],
        nodes=NODES,
        remote={V: remote},
        cluster_per_server=True,
    )
    return replace(base, **kw)


def removed(plan: Any) -> set[str]:
    return {a.deployment_id for a in plan.actions if isinstance(a, RemoveDeployment)}


def purged(plan: Any) -> set[str]:
    return {a.instance_id for a in plan.actions if isinstance(a, PurgeInstance)}


def test_a_healthy_fleet_of_clusters_needs_nothing() -> None:
    plan = plan_reconcile(fleet(), NOW)
    assert plan.actions == [] and plan.complete


# Forced (no mass-removal guard at all) and with or without the per-cluster rules: the
# unknown cluster alone keeps its things.
FORCED = ReconcilePolicy(max_removal_fraction=1.0)
EITHER_GUARD = pytest.mark.parametrize("per_server", [True, False])


@EITHER_GUARD
def test_nothing_on_an_unknown_cluster_is_removed(per_server: bool) -> None:
    """gpu-2 was not read: its Jobs are not in the listing and its node is not listed. Its
    deployments and server stay; gpu-1's vanished job is still removed."""
    inputs = fleet(
        jobs=[job(i) for i in (2, 3, 7, 8, 9)],  # d1 (gpu-1) really gone; d4-d6 not read
        nodes=[NODES[0], NODES[2]],
        unknown_servers={"s2": "timed out"},
        cluster_per_server=per_server,
    )
    plan = plan_reconcile(inputs, NOW, FORCED)
    assert removed(plan) == {"d1"}
    assert not plan.of_type(RemoveServer)
    assert not plan.complete
    assert any("gpu-2: timed out" in p for p in plan.problems)


@EITHER_GUARD
def test_unknown_cluster_spares_every_kind_of_removal(per_server: bool) -> None:
    """The validator dropped the chute and no longer lists any instance: everywhere else the
    deployments go, on the unknown cluster they stay, and the chute row (whose deletion would
    cascade to them) stays too."""
    inputs = fleet(
        instances=[],
        remote_chutes=[],
        jobs=[job(i) for i in (1, 2, 3, 7, 8, 9)],
        nodes=[NODES[0], NODES[2]],
        unknown_servers={"s2": "connection refused"},
        cluster_per_server=per_server,
    )
    plan = plan_reconcile(inputs, NOW, FORCED)
    assert removed(plan) == {"d1", "d2", "d3", "d7", "d8", "d9"}
    assert not plan.of_type(DeleteChute)
    assert not plan.of_type(RemoveServer)


def test_the_same_fleet_with_every_cluster_read_removes_them_all() -> None:
    """The control for the test above: without the unknown cluster the chute goes."""
    inputs = fleet(instances=[], remote_chutes=[])
    plan = plan_reconcile(inputs, NOW, FORCED)
    assert removed(plan) == {f"d{i}" for i in range(1, 10)}
    assert plan.of_type(DeleteChute)


def test_validator_instances_of_an_unknown_server_are_not_purged() -> None:
    """Untracked instances: the one announced from gpu-1 (read) is purged, the ones on gpu-2
    (unknown) and of no known host are kept."""
    stray = [
        inst(21, config_id="x21", host="10.0.0.1"),
        inst(22, config_id="x22", host="10.0.0.2"),
        inst(23, config_id="x23", host=None),
    ]
    inputs = fleet(
        instances=[*(inst(i) for i in range(1, 10)), *stray],
        unknown_servers={"s2": "timed out"},
    )
    assert purged(plan_reconcile(inputs, NOW)) == {"i21"}
    everything_read = replace(inputs, unknown_servers={})
    assert purged(plan_reconcile(everything_read, NOW)) == {"i21", "i22", "i23"}


def test_non_destructive_actions_still_run_on_an_unknown_server() -> None:
    deployments = [*DEPLOYMENTS[:3], dep(4, server_id="s2", active=False), *DEPLOYMENTS[4:]]
    inputs = fleet(
        deployments=deployments,
        jobs=[job(i) for i in (1, 2, 3, 7, 8, 9)],
        unknown_servers={"s2": "timed out"},
    )
    plan = plan_reconcile(inputs, NOW)
    [mirror] = plan.of_type(MirrorState)
    assert isinstance(mirror, MirrorState) and mirror.deployment_id == "d4"


def test_a_cluster_that_lost_most_of_its_jobs_is_held_back_alone() -> None:
    """gpu-2's listing shows none of its three Jobs (a cache mid-replace); gpu-1 lost one Job
    for real. gpu-2 is held back, gpu-1's removal goes on; the global guard (1+3 of 9) does
    not trip."""
    inputs = fleet(jobs=[job(i) for i in (2, 3, 7, 8, 9)])
    plan = plan_reconcile(inputs, NOW)
    assert removed(plan) == {"d1"}
    assert not plan.complete
    [line] = [p for p in plan.problems if "gpu-2" in p]
    assert "3 of 3" in line and "recycle --force" in line
    assert not any("gpu-1" in p for p in plan.problems)


def test_force_lifts_the_per_cluster_guard() -> None:
    inputs = fleet(jobs=[job(i) for i in (2, 3, 7, 8, 9)])
    assert removed(plan_reconcile(inputs, NOW, FORCED)) == {"d1", "d4", "d5", "d6"}


def test_the_per_cluster_guard_is_off_in_the_single_layout() -> None:
    """One cluster for the fleet: only the global guard counts, as before."""
    inputs = fleet(jobs=[job(i) for i in (2, 3, 7, 8, 9)], cluster_per_server=False)
    plan = plan_reconcile(inputs, NOW)
    assert removed(plan) == {"d1", "d4", "d5", "d6"} and plan.complete


def test_a_lone_deployment_whose_job_is_gone_is_still_removed() -> None:
    """Below `cluster_guard_minimum` deployments the per-cluster share is not meaningful."""
    inputs = fleet(deployments=[dep(1, server_id="s1")], jobs=[], instances=[inst(1)])
    assert removed(plan_reconcile(inputs, NOW)) == {"d1"}


def test_server_is_removed_only_when_its_cluster_lists_another_node() -> None:
    """gpu-3's node uid changed (the cluster was rebuilt): the old server row goes. gpu-2's
    cluster lists no node at all (a cache that dropped it): its server stays."""
    rebuilt = NodeView(name="gpu-3", server_id="new-uid", ready=True)
    inputs = fleet(deployments=DEPLOYMENTS[:3], jobs=[job(i) for i in (1, 2, 3)])
    inputs = replace(inputs, nodes=[NODES[0], rebuilt])
    plan = plan_reconcile(inputs, NOW)
    assert [a.server_id for a in plan.actions if isinstance(a, RemoveServer)] == ["s3"]
    assert any("gpu-2 lists no node" in p for p in plan.problems)


def test_every_cluster_unknown_holds_every_removal_but_says_why() -> None:
    inputs = fleet(
        instances=[],
        jobs=[],
        nodes=[],
        unknown_servers={s.server_id: "timed out" for s in SERVERS},
    )
    plan = plan_reconcile(inputs, NOW)
    assert plan.destructive == []
    assert any("3 cluster(s) not read" in p for p in plan.problems)
    assert not any("no nodes at all" in p for p in plan.problems)
