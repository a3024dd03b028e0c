"""The pure reconcile planner: each rule, and the guards against acting on bad information."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gepetto_core.models.cluster import (
    ChuteJobView,
    ContainerStateView,
    JobStatusView,
    NodeView,
    PodView,
    ServiceView,
)
from gepetto_core.models.inventory import Chute, Deployment, Server
from gepetto_core.models.validator import (
    RollingUpdate,
    ValidatorChute,
    ValidatorImage,
    ValidatorInstance,
)
from gepetto_core.scheduling.reconcile_actions import (
    DeleteChute,
    DeleteJob,
    DeleteService,
    MirrorState,
    PurgeInstance,
    RemoveDeployment,
    RemoveServer,
    SaveChute,
    SetInstanceId,
)
from gepetto_core.scheduling.reconcile_plan import ReconcileInputs, RemoteView, plan_reconcile

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
V = "5Validator"


def chute(**kw: Any) -> Chute:
    base: dict[str, Any] = dict(
        chute_id="c1",
        validator=V,
        name="llama",
        image="u/llama:1",
        code="x",
        filename="f.py",
        ref_str="f:chute",
        version="v1",
        supported_gpus=["h100"],
        gpu_count=1,
        chutes_version="0.3.61",
    )
    return Chute.model_validate({**base, **kw})


def remote_chute(**kw: Any) -> ValidatorChute:
    base: dict[str, Any] = dict(
        chute_id="c1",
        name="llama",
        image="u/llama:1",
        code="x",
        filename="f.py",
        ref_str="f:chute",
        version="v1",
        supported_gpus=["h100"],
        chutes_version="0.3.61",
        node_selector={"gpu_count": 1},
        cords=[{"path": "/x"}],
    )
    return ValidatorChute.model_validate({**base, **kw})


def dep(i: int = 1, age_min: float = 60, **kw: Any) -> Deployment:
    base: dict[str, Any] = dict(
        deployment_id=f"d{i}",
        validator=V,
        chute_id="c1",
        server_id="s1",
        version="v1",
        instance_id=f"i{i}",
        config_id=f"cfg{i}",
        verified_at=NOW - timedelta(minutes=30),
        active=True,
        stub=False,
        created_at=NOW - timedelta(minutes=age_min),
    )
    return Deployment.model_validate({**base, **kw})


def job(i: int = 1, **kw: Any) -> ChuteJobView:
    base: dict[str, Any] = dict(
        name=f"chute-d{i}",
        namespace="chutes",
        uid=f"u{i}",
        deployment_id=f"d{i}",
        chute_id="c1",
        version="v1",
        config_id=f"cfg{i}",
        ready=True,
        status=JobStatusView(active=1),
    )
    return ChuteJobView.model_validate({**base, **kw})


def inst(i: int = 1, **kw: Any) -> ValidatorInstance:
    base: dict[str, Any] = dict(
        instance_id=f"i{i}",
        chute_id="c1",
        config_id=f"cfg{i}",
        active=True,
        verified=True,
        last_verified_at=NOW - timedelta(minutes=30),
    )
    return ValidatorInstance.model_validate({**base, **kw})


SERVER = Server(server_id="s1", validator=V, name="gpu-01", gpu_count=8, hourly_cost=2.0)
NODE = NodeView(name="gpu-01", server_id="s1", ready=True)


def inputs(
    deployments: list[Deployment] | None = None,
    jobs: list[ChuteJobView] | None = None,
    instances: list[ValidatorInstance] | None = None,
    **kw: Any,
) -> ReconcileInputs:
    ds = [dep()] if deployments is None else deployments
    remote = RemoteView(
        instances=[inst()] if instances is None else instances,
        chutes=kw.pop("remote_chutes", [remote_chute()]),
        images=kw.pop("images", []),
        rolling_updates=kw.pop("rolling_updates", []),
    )
    base = ReconcileInputs(
        deployments=ds,
        chutes=kw.pop("chutes", [chute()]),
        servers=[SERVER],
        jobs=[job()] if jobs is None else jobs,
        legacy=[],
        services=kw.pop("services", []),
        nodes=[NODE],
        remote={V: remote},
    )
    return replace(base, **kw)


def test_a_healthy_fleet_needs_nothing() -> None:
    plan = plan_reconcile(inputs(), NOW)
    assert plan.actions == [] and plan.complete


def test_instance_id_is_learned_from_the_launch_config() -> None:
    plan = plan_reconcile(inputs([dep(instance_id=None)]), NOW)
    assert plan.actions == [SetInstanceId("d1", "i1", "matched by launch config id")]


def test_verified_and_active_are_mirrored() -> None:
    plan = plan_reconcile(inputs([dep(verified_at=None, active=False)]), NOW)
    [mirror] = plan.actions
    assert isinstance(mirror, MirrorState) and mirror.verified and mirror.active is True


@pytest.mark.parametrize(
    ("deployment", "jobs", "instances", "reason"),
    [
        (dep(), [], None, "job is gone"),
        (
            dep(),
            [
                job(
                    status=JobStatusView(failed=1),
                    pods=[
                        PodView(
                            name="p",
                            namespace="chutes",
                            uid="p",
                            state=ContainerStateView(
                                state="terminated", reason="Error", exit_code=137
                            ),
                        )
                    ],
                )
            ],
            None,
            "job failed: Error, exit 137",
        ),
        (
            dep(),
            [
                job(
                    pods=[
                        PodView(
                            name="p",
                            namespace="chutes",
                            uid="p",
                            state=ContainerStateView(state="terminated"),
                        )
                    ]
                )
            ],
            None,
            "pod terminated",
        ),
        (dep(), None, [], "validator no longer lists the instance"),
        (
            dep(verified_at=None, instance_id=None, age_min=200),
            None,
            [],
            "not verified after 120 min",
        ),
    ],
)
def test_broken_deployments_are_removed_as_failures(
    deployment: Deployment,
    jobs: list[ChuteJobView] | None,
    instances: list[ValidatorInstance] | None,
    reason: str,
) -> None:
    plan = plan_reconcile(inputs([deployment], jobs, instances), NOW)
    removals = plan.of_type(RemoveDeployment)
    assert len(removals) == 1, plan
    assert isinstance(removals[0], RemoveDeployment)
    assert removals[0].reason.startswith(reason) and removals[0].end == "failure"


def test_a_young_stub_is_left_to_its_deploy() -> None:
    plan = plan_reconcile(inputs([dep(stub=True, instance_id=None, age_min=2)], [], []), NOW)
    assert plan.actions == []


def test_a_missing_instance_gets_a_grace_period() -> None:
    plan = plan_reconcile(inputs([dep(age_min=2)], None, []), NOW)
    assert plan.of_type(RemoveDeployment) == []


def test_untracked_instances_jobs_and_services_are_purged() -> None:
    plan = plan_reconcile(
        inputs(
            [dep()],
            [job(), job(2)],
            [inst(), inst(3, config_id="cfg-unknown")],
            services=[ServiceView(name="chute-service-d9", namespace="chutes", deployment_id="d9")],
        ),
        NOW,
    )
    assert PurgeInstance(V, "c1", "i3", "instance not tracked") in plan.actions
    assert DeleteJob("d2", "chute-d2", "job not tracked") in plan.actions
    assert DeleteService("d9", "chute-service-d9", "service without deployment") in plan.actions


def test_an_instance_whose_config_is_tracked_is_not_purged() -> None:
    # the deployment exists but instance_created has not been seen yet
    plan = plan_reconcile(inputs([dep(instance_id=None)], None, [inst()]), NOW)
    assert plan.of_type(PurgeInstance) == []


def test_chute_drift_and_image_patch_are_saved_once() -> None:
    rc = remote_chute(code="new code", image_id="img1")
    images = [
        ValidatorImage(image_id="img1", username="u", name="llama", tag="1", patch_version="p2")
    ]
    plan = plan_reconcile(inputs(remote_chutes=[rc], images=images), NOW)
    [save] = plan.of_type(SaveChute)
    assert isinstance(save, SaveChute)
    assert save.image == "u/llama:1-p2" and "code" in save.reason and "image" in save.reason
    # once saved, the same inputs plan nothing: no flapping between image and patch
    saved = chute(code="new code", image="u/llama:1-p2")
    again = plan_reconcile(inputs(remote_chutes=[rc], images=images, chutes=[saved]), NOW)
    assert again.of_type(SaveChute) == []


def test_a_removed_chute_is_deleted_with_its_deployments() -> None:
    plan = plan_reconcile(inputs(remote_chutes=[remote_chute(chute_id="other")]), NOW)
    [removal] = plan.of_type(RemoveDeployment)
    assert isinstance(removal, RemoveDeployment) and removal.end == "planned"
    assert DeleteChute("c1", "chute was removed by the validator") in plan.actions
    assert plan.actions.index(removal) < plan.actions.index(plan.of_type(DeleteChute)[0])


def test_a_chute_the_validator_deleted_is_deleted_once_for_its_request() -> None:
    requested = {"c1": "the validator deleted the chute"}
    # still listed (the chute list not refreshed yet): deleted for the request's reason
    plan = plan_reconcile(inputs(chute_removals=requested), NOW)
    assert plan.of_type(DeleteChute) == [DeleteChute("c1", "the validator deleted the chute")]
    # gone from the list as well: one deletion, for the request's reason
    gone = inputs(chute_removals=requested, remote_chutes=[remote_chute(chute_id="other")])
    assert plan_reconcile(gone, NOW).of_type(DeleteChute) == plan.of_type(DeleteChute)
    # the validator's lists not read: held back, as every removal on incomplete information
    unknown = plan_reconcile(inputs(chute_removals=requested, remote_chutes=None), NOW)
    assert unknown.of_type(DeleteChute) == [] and not unknown.complete
    # its row already gone: nothing to delete
    assert plan_reconcile(inputs(chute_removals={"c9": "x"}), NOW).of_type(DeleteChute) == []
    # a deployment of it on a cluster not read: its rows would go with it, so it waits
    unread = inputs(chute_removals=requested, unknown_servers={"s1": "timed out"})
    assert plan_reconcile(unread, NOW).of_type(DeleteChute) == []


def test_chutes_in_a_rolling_update_are_left_alone() -> None:
    plan = plan_reconcile(
        inputs(
            remote_chutes=[remote_chute(version="v2")],
            rolling_updates=[RollingUpdate(chute_id="c1", old_version="v1", new_version="v2")],
        ),
        NOW,
    )
    assert plan.of_type(RemoveDeployment) == [] and plan.of_type(DeleteChute) == []


def test_a_server_whose_node_is_gone_is_removed() -> None:
    plan = plan_reconcile(inputs(nodes=[NodeView(name="other", server_id="s9", ready=True)]), NOW)
    assert RemoveServer("s1", "node gpu-01 is gone from the cluster") in plan.actions


def test_a_server_the_validator_deleted_is_removed_though_its_node_is_there() -> None:
    requested = {"s1": "the server was deleted (miner API)"}
    plan = plan_reconcile(inputs(server_removals=requested), NOW)
    assert plan.of_type(RemoveServer) == [RemoveServer("s1", "the server was deleted (miner API)")]
    # its node gone as well: one removal, for the request's reason
    gone = inputs(server_removals=requested, nodes=[NodeView(name="x", server_id="s9", ready=True)])
    assert plan_reconcile(gone, NOW).of_type(RemoveServer) == plan.of_type(RemoveServer)
    # its cluster not read: not judged this pass
    unread = inputs(server_removals=requested, unknown_servers={"s1": "timed out"})
    assert plan_reconcile(unread, NOW).of_type(RemoveServer) == []


@pytest.mark.parametrize(
    "broken",
    [
        {"jobs": None},
        {"legacy": None},
        {"services": None},
        {"nodes": None},
        {
            "remote": {
                V: RemoteView(
                    instances=None, chutes=[remote_chute()], images=[], rolling_updates=[]
                )
            }
        },
        {"remote": {V: RemoteView(instances=[], chutes=None, images=[], rolling_updates=[])}},
    ],
)
def test_a_failed_listing_removes_nothing(broken: dict[str, Any]) -> None:
    # everything here would be removed if the information were complete
    base = inputs([dep(), dep(2)], [], [], remote_chutes=[])
    plan = plan_reconcile(replace(base, **broken), NOW)
    assert plan.destructive == []
    assert not plan.complete and plan.problems


def test_mass_removal_is_held_back() -> None:
    deployments = [dep(i) for i in range(1, 9)]
    plan = plan_reconcile(inputs(deployments, [], [inst(i) for i in range(1, 9)]), NOW)
    assert plan.destructive == []
    assert any("would go at once" in p for p in plan.problems)


def test_empty_node_list_never_removes_servers() -> None:
    plan = plan_reconcile(inputs(nodes=[]), NOW)
    assert plan.of_type(RemoveServer) == []


def test_many_observed_failures_are_not_held_back() -> None:
    # eight Jobs that failed are eight real failures, not a listing that lied
    failed = JobStatusView(failed=1)
    deployments = [dep(i) for i in range(1, 9)]
    jobs = [job(i, status=failed) for i in range(1, 9)]
    plan = plan_reconcile(inputs(deployments, jobs, [inst(i) for i in range(1, 9)]), NOW)
    assert len(plan.of_type(RemoveDeployment)) == 8 and plan.complete


def test_a_stale_stub_is_removed_without_blaming_the_chute() -> None:
    plan = plan_reconcile(inputs([dep(stub=True, instance_id=None, age_min=45)], [], []), NOW)
    [removal] = plan.of_type(RemoveDeployment)
    assert isinstance(removal, RemoveDeployment)
    assert removal.reason.startswith("stub older than 30 min") and removal.end == "planned"
