"""The cluster adapter's contract: every test runs against the sandbox and against a real
kube-apiserver with its controllers and the fake kubelet (`-m realkube` selects the latter).
Only the public API is used here; sandbox-only fault injection lives in test_kube_adapter.py and
test_sandbox_protocol.py. A difference between the two backends is a sandbox bug."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock
from pydantic import SecretStr

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.adapters.kube_connect import connect_api
from gepetto_core.errors import (
    ClusterConflictError,
    ClusterNotFoundError,
    ClusterUnavailableError,
)
from gepetto_core.models.cluster import ChuteJobView
from gepetto_sandbox.cluster import PodFault

# The backend fixture's type lives in conftest.py; tests take it as Any.
Backend = Any


def env_of(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


async def collect(stream: Any, count: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    async for event in stream:
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == count:
            break
    return seen


# --------------------------------------------------------------------------- the adapter


async def test_nodes_are_servers(backend: Backend) -> None:
    nodes = {n.name: n for n in await backend.cluster.list_nodes()}
    assert set(nodes) == {f.name for f in backend.fleet}
    for fleet_node in backend.fleet:
        view = nodes[fleet_node.name]
        assert view.server_id == fleet_node.uid
        assert view.ready and view.worker
        assert view.gpu_short_ref == fleet_node.gpu_type
        assert view.gpu_count == fleet_node.gpu_count
        assert view.is_tee == fleet_node.tee
        assert view.external_ip == fleet_node.external_ip
        assert view.validator == fleet_node.validator


async def test_deploy_reads_back_and_undeploy_waits_for_pods(
    backend: Backend, rows: Any, eventually: Any
) -> None:
    cluster: KubeCluster = backend.cluster
    node = backend.fleet[0]
    server, chute = rows.server(node), rows.chute(gpu_count=2)
    deployment = rows.deployment(chute, server, config_id="cfg-1")
    launch = ko.LaunchParams(
        launch_token=SecretStr("jwt-token"),
        job_ports=ko.normalize_job_ports([{"port": 7000, "proto": "tcp"}]),
    )
    deployed = await cluster.deploy_chute(chute, server, rows.gpus(node, 2), deployment, launch)
    dep_id = deployment.deployment_id
    assert deployed.job_name == f"chute-{dep_id}"
    assert deployed.service.name == f"chute-service-{dep_id}"

    # The Job's env carries the node ports the API server allocated to the Service.
    raw_job = backend.api.sanitize_for_serialization(
        await client.BatchV1Api(backend.api).read_namespaced_job(deployed.job_name, "chutes")
    )
    env = env_of(raw_job)
    assert env["CHUTES_PORT_PRIMARY"] == str(deployed.primary_port)
    assert env["CHUTES_PORT_LOGGING"] == str(deployed.service.node_port(8001))
    assert env["CHUTES_PORT_TCP_7000"] == str(deployed.service.node_port(7000))
    assert env["NVIDIA_VISIBLE_DEVICES"].count("GPU-") == 2
    assert 30000 <= deployed.primary_port <= 32767

    async def ready() -> ChuteJobView | None:
        # The pod turns ready first; the Job controller counts it a moment later.
        job = await cluster.get_chute_job(dep_id)
        return job if job.ready and job.status.ready == 1 else None

    job = await eventually(ready)
    assert job.deployment_id == dep_id and job.chute_id == chute.chute_id
    assert job.config_id == "cfg-1" and job.node_name == node.name
    assert job.status.active == 1 and job.status.ready == 1
    (pod,) = job.pods
    assert pod.phase == "Running" and pod.state is not None and pod.state.state == "running"
    listed = {j.deployment_id: j for j in await cluster.list_chute_jobs()}
    assert listed[dep_id].pods[0].name == pod.name
    assert "cfg-1" in await cluster.config_ids_in_use()
    services = {s.deployment_id for s in await cluster.list_chute_services()}
    assert dep_id in services
    assert any("container started" in line for line in await cluster.pod_log_tail(dep_id))

    assert await cluster.undeploy(dep_id, wait_seconds=60) is True
    assert await cluster.list_pods("chutes", f"chutes/deployment-id={dep_id}") == []

    async def job_gone() -> bool:
        try:
            await cluster.get_chute_job(dep_id)
        except ClusterNotFoundError:
            return True
        return False

    # Foreground deletion: the pods go first, then the Job (the garbage collector's step).
    await eventually(job_gone)
    assert dep_id not in {s.deployment_id for s in await cluster.list_chute_services()}
    # Deleting what is already gone is not an error.
    assert await cluster.undeploy(dep_id, wait_seconds=1) is True


async def test_freed_node_port_can_be_reused(backend: Backend, rows: Any) -> None:
    cluster: KubeCluster = backend.cluster
    server, chute = rows.server(backend.fleet[1]), rows.chute()
    deployment = rows.deployment(chute, server)
    service = await cluster.create_service(chute, deployment, ko.LaunchParams())
    port = service.node_port(8000)
    core = client.CoreV1Api(backend.api)
    clash = {
        "metadata": {"name": "clash"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]},
    }
    with pytest.raises(client.ApiException) as caught:
        await core.create_namespaced_service("chutes", clash)
    assert caught.value.status == 422
    assert await cluster.undeploy(deployment.deployment_id, wait_seconds=1)
    created = await core.create_namespaced_service("chutes", clash)
    assert created.spec.ports[0].node_port == port
    await core.delete_namespaced_service("clash", "chutes")


async def test_node_disk_arithmetic_and_cache(backend: Backend, rows: Any, eventually: Any) -> None:
    cluster: KubeCluster = backend.cluster
    node = backend.fleet[2]
    disk = await cluster.node_disk(node.name)
    assert disk.total_gib == node.ephemeral_gib
    assert disk.requested_gib == 0
    assert disk.available_gib == node.ephemeral_gib - 20

    server, chute = rows.server(node), rows.chute()
    deployment = rows.deployment(chute, server)
    await cluster.deploy_chute(
        chute, server, rows.gpus(node, 1), deployment, ko.LaunchParams(disk_gb=150)
    )
    # deploy invalidated the cache: the new Job's pod (Pending or Running) counts once the
    # Job controller has made it.
    dep_selector = f"chutes/deployment-id={deployment.deployment_id}"
    await eventually(lambda: cluster.list_pods("chutes", dep_selector))
    after = await cluster.node_disk(node.name)
    assert after.requested_gib == 150
    assert after.available_gib == node.ephemeral_gib - 150 - 20
    assert await cluster.has_disk_available(node.name, after.available_gib)
    assert not await cluster.has_disk_available(node.name, after.available_gib + 1)

    # A pod made behind the adapter's back is only seen once the cache is invalidated.
    core = client.CoreV1Api(backend.api)
    squatter = {
        "metadata": {"name": "squatter"},
        "spec": {
            "nodeName": node.name,
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "resources": {"requests": {"ephemeral-storage": "30Gi"}},
                }
            ],
        },
    }
    await core.create_namespaced_pod("default", squatter)
    assert (await cluster.node_disk(node.name)).requested_gib == 150
    cluster.invalidate_disk(node.name)
    assert (await cluster.node_disk(node.name)).requested_gib == 180

    assert await cluster.undeploy(deployment.deployment_id, wait_seconds=60)
    assert (await cluster.node_disk(node.name)).requested_gib == 30
    await core.delete_namespaced_pod("squatter", "default", grace_period_seconds=0)


async def test_code_configmap_for_old_chutes(backend: Backend, rows: Any) -> None:
    cluster: KubeCluster = backend.cluster
    node = backend.fleet[4]
    server, chute = rows.server(node), rows.chute(chutes_version="0.2.9")
    deployment = rows.deployment(chute, server)
    await cluster.deploy_chute(chute, server, rows.gpus(node, 1), deployment, ko.LaunchParams())
    name = ko.code_configmap_name(chute.chute_id, chute.version)
    core = client.CoreV1Api(backend.api)
    cm = await core.read_namespaced_config_map(name, "chutes")
    assert cm.data == {"chute_file.py": chute.code}
    changed = chute.model_copy(update={"code": "print('v2')"})
    await cluster.ensure_code_configmap(changed)  # kept: not forced
    cm = await core.read_namespaced_config_map(name, "chutes")
    assert cm.data == {"chute_file.py": chute.code}
    await cluster.ensure_code_configmap(changed, replace=True)
    cm = await core.read_namespaced_config_map(name, "chutes")
    assert cm.data == {"chute_file.py": "print('v2')"}
    await cluster.undeploy(deployment.deployment_id, wait_seconds=60)
    await cluster.delete_code_configmap(chute.chute_id, chute.version)
    await cluster.delete_code_configmap(chute.chute_id, chute.version)  # gone is fine
    with pytest.raises(client.ApiException):
        await core.read_namespaced_config_map(name, "chutes")


async def test_scripted_faults_show_in_job_views(
    backend: Backend, rows: Any, eventually: Any
) -> None:
    cluster: KubeCluster = backend.cluster
    node = backend.fleet[6]
    server = rows.server(node)
    pull_chute, crash_chute = rows.chute(), rows.chute()
    pull = rows.deployment(pull_chute, server)
    crash = rows.deployment(crash_chute, server)
    backend.script_fault(pull.deployment_id, PodFault("image_pull"))
    backend.script_fault(crash_chute.chute_id, PodFault("crash", exit_code=3, after_seconds=0.05))
    gpus = rows.gpus(node, 2)
    await cluster.deploy_chute(pull_chute, server, gpus[:1], pull, ko.LaunchParams())
    await cluster.deploy_chute(crash_chute, server, gpus[1:], crash, ko.LaunchParams())

    async def pull_backoff() -> ChuteJobView | None:
        job = await cluster.get_chute_job(pull.deployment_id)
        state = job.pods[0].state if job.pods else None
        return job if state is not None and state.reason == "ImagePullBackOff" else None

    job = await eventually(pull_backoff)
    assert not job.ready and job.pods[0].phase == "Pending"

    async def failed() -> ChuteJobView | None:
        job = await cluster.get_chute_job(crash.deployment_id)
        return job if job.status.failed == 1 else None

    job = await eventually(failed)
    (pod,) = job.pods
    assert pod.phase == "Failed" and pod.state is not None
    assert pod.state.state == "terminated" and pod.state.exit_code == 3
    assert job.status.active == 0 and not job.ready
    for dep in (pull, crash):
        assert await cluster.undeploy(dep.deployment_id, wait_seconds=60)


async def test_node_not_ready(backend: Backend) -> None:
    name = backend.fleet[7].name
    await backend.set_node_ready(name, False)
    assert not (await backend.cluster.get_node(name)).ready
    await backend.set_node_ready(name, True)
    assert (await backend.cluster.get_node(name)).ready


async def test_legacy_deployments_listed_and_undeployed(backend: Backend, eventually: Any) -> None:
    cluster: KubeCluster = backend.cluster
    dep_id = "legacy-0001"
    labels = {"chutes/chute": "true", "chutes/deployment-id": dep_id, "chutes/chute-id": "old"}
    body = {
        "metadata": {"name": f"chute-{dep_id}", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"chutes/deployment-id": dep_id}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeName": "h100-0", "containers": [{"name": "chute", "image": "x"}]},
            },
        },
    }
    await client.AppsV1Api(backend.api).create_namespaced_deployment("chutes", body)
    legacy = {d.deployment_id: d for d in await cluster.list_legacy_deployments()}
    assert legacy[dep_id].is_legacy and legacy[dep_id].node_name == "h100-0"
    assert legacy[dep_id].chute_id == "old"
    assert await cluster.undeploy(dep_id, wait_seconds=60)

    async def gone() -> bool:
        return dep_id not in {d.deployment_id for d in await cluster.list_legacy_deployments()}

    await eventually(gone)


async def test_real_conflict_and_not_found(backend: Backend, rows: Any) -> None:
    cluster: KubeCluster = backend.cluster
    server, chute = rows.server(backend.fleet[1]), rows.chute()
    deployment = rows.deployment(chute, server)
    service = await cluster.create_service(chute, deployment, ko.LaunchParams())
    with pytest.raises(ClusterConflictError):
        await cluster.create_service(chute, deployment, ko.LaunchParams())
    # The refused duplicate did not release the live Service's node ports.
    clash = {
        "metadata": {"name": "clash-2"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": service.node_port(8000)}]},
    }
    with pytest.raises(client.ApiException) as caught:
        await client.CoreV1Api(backend.api).create_namespaced_service("chutes", clash)
    assert caught.value.status == 422
    with pytest.raises(ClusterNotFoundError):
        await cluster.get_node("no-such-node")
    with pytest.raises(ClusterNotFoundError):
        await cluster.get_chute_job("no-such-deployment")
    await cluster.undeploy(deployment.deployment_id, wait_seconds=1)


async def test_connection_refused(backend: Backend, settings: ko.JobSettings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    config = backend.kubeconfig
    config = {**config, "clusters": [dict(c) for c in config["clusters"]]}
    config["clusters"][0]["cluster"] = {
        **config["clusters"][0]["cluster"],
        "server": f"https://127.0.0.1:{free_port}",
    }
    dead_api = await connect_api(config)
    try:
        with pytest.raises(ClusterUnavailableError):
            await KubeCluster(dead_api, settings).list_nodes()
    finally:
        await dead_api.close()


# --------------------------------------------------------------------------- the protocol


async def test_watch_resumes_from_a_resource_version(backend: Backend) -> None:
    core = client.CoreV1Api(backend.api)
    listed = await core.list_namespaced_config_map("default", label_selector="proto=watch")
    rv = listed.metadata.resource_version
    body = {"metadata": {"name": "w1", "labels": {"proto": "watch"}}, "data": {"k": "1"}}
    await core.create_namespaced_config_map("default", body)
    await core.patch_namespaced_config_map("w1", "default", {"data": {"k": "2"}})
    await core.create_namespaced_config_map(
        "default", {"metadata": {"name": "other"}, "data": {}}
    )  # not selected
    await core.delete_namespaced_config_map("w1", "default")
    async with watch.Watch() as stream:
        events = await collect(
            stream.stream(
                core.list_namespaced_config_map,
                "default",
                label_selector="proto=watch",
                resource_version=rv,
                timeout_seconds=60,
            ),
            3,
        )
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    await core.delete_namespaced_config_map("other", "default")


async def test_watch_sees_objects_leaving_the_selection_as_deleted(backend: Backend) -> None:
    core = client.CoreV1Api(backend.api)
    body = {"metadata": {"name": "sel", "labels": {"tier": "a"}}, "data": {}}
    # The watch starts from this version: however late it connects (the change may be over
    # by then), it sees the change, replayed or live.
    listed = await core.list_namespaced_config_map("default", label_selector="tier=a")

    async def change() -> None:
        await core.create_namespaced_config_map("default", body)
        await core.patch_namespaced_config_map(
            "sel", "default", {"metadata": {"labels": {"tier": "b"}}}
        )

    task = asyncio.create_task(change())
    async with watch.Watch() as stream:
        events = await collect(
            stream.stream(
                core.list_namespaced_config_map,
                "default",
                label_selector="tier=a",
                resource_version=listed.metadata.resource_version,
                timeout_seconds=60,
            ),
            2,
        )
    await task
    assert events == [("ADDED", "sel"), ("DELETED", "sel")]
    await core.delete_namespaced_config_map("sel", "default")


async def test_replace_with_a_stale_version_conflicts(backend: Backend) -> None:
    core = client.CoreV1Api(backend.api)
    created = await core.create_namespaced_config_map(
        "default", {"metadata": {"name": "occ"}, "data": {"v": "1"}}
    )
    created.data = {"v": "2"}
    updated = await core.replace_namespaced_config_map("occ", "default", created)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"v": "3"}  # still carries the old resourceVersion
    with pytest.raises(client.ApiException) as caught:
        await core.replace_namespaced_config_map("occ", "default", created)
    assert caught.value.status == 409
    with pytest.raises(client.ApiException) as again:
        await core.create_namespaced_config_map("default", {"metadata": {"name": "occ"}})
    assert again.value.status == 409 and "AlreadyExists" in again.value.body
    await core.delete_namespaced_config_map("occ", "default")


async def test_patch_flavours_and_generation(backend: Backend) -> None:
    apps = client.AppsV1Api(backend.api)
    body = {
        "metadata": {"name": "web", "labels": {"a": "1"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }
    created = await apps.create_namespaced_deployment("default", body)
    assert created.metadata.generation == 1
    patched = await apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3 and patched.metadata.generation == 2
    json_patched = await apps.patch_namespaced_deployment(
        "web", "default", [{"op": "add", "path": "/metadata/labels/b", "value": "2"}]
    )
    assert json_patched.metadata.labels == {"a": "1", "b": "2"}
    assert json_patched.metadata.generation == 2  # metadata is not spec
    await apps.delete_namespaced_deployment("web", "default")


async def test_delete_collection_by_label(backend: Backend) -> None:
    core = client.CoreV1Api(backend.api)
    for name, group in (("c1", "x"), ("c2", "x"), ("c3", "y")):
        body = {"metadata": {"name": name, "labels": {"group": group}}}
        await core.create_namespaced_config_map("default", body)
    await core.delete_collection_namespaced_config_map("default", label_selector="group=x")
    left = await core.list_namespaced_config_map("default", label_selector="group")
    assert [c.metadata.name for c in left.items] == ["c3"]
    await core.delete_namespaced_config_map("c3", "default")


async def test_namespaced_create_needs_the_namespace(backend: Backend) -> None:
    core = client.CoreV1Api(backend.api)
    with pytest.raises(client.ApiException) as caught:
        await core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert caught.value.status == 404


async def test_leader_election_over_leases(backend: Backend) -> None:
    became_leader = asyncio.Event()

    async def on_started() -> None:
        became_leader.set()

    async def on_stopped() -> None:
        return None

    lock = LeaseLock("gepetto-proto", "chutes", "gepetto-0", backend.api)
    config = electionconfig.Config(
        lock,
        lease_duration=3,
        renew_deadline=2,
        retry_period=1,
        onstarted_leading=on_started,
        onstopped_leading=on_stopped,
    )
    election = asyncio.create_task(leaderelection.LeaderElection(config).run())
    try:
        async with asyncio.timeout(60):  # a hang detector
            await became_leader.wait()
    finally:
        election.cancel()
        with pytest.raises(asyncio.CancelledError):
            await election
    coordination = client.CoordinationV1Api(backend.api)
    lease = await coordination.read_namespaced_lease("gepetto-proto", "chutes")
    assert lease.spec.holder_identity == "gepetto-0"
    await coordination.delete_namespaced_lease("gepetto-proto", "chutes")


async def test_job_status_follows_pods_and_succeeds(backend: Backend, eventually: Any) -> None:
    batch = client.BatchV1Api(backend.api)
    backend.script_fault("ok-job", PodFault("crash", exit_code=0, after_seconds=0.05))
    body = {
        "metadata": {"name": "ok-job"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "nodeName": backend.fleet[0].name,
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                }
            },
        },
    }
    await batch.create_namespaced_job("default", body)

    async def completed() -> Any:
        job = await batch.read_namespaced_job("ok-job", "default")
        done = [c.type for c in job.status.conditions or [] if c.status == "True"]
        return job if "Complete" in done else None

    job = await eventually(completed, 30)
    assert job.status.succeeded == 1 and not job.status.active
    # Since Kubernetes 1.31 the Job controller records SuccessCriteriaMet before Complete.
    assert [c.type for c in job.status.conditions] == ["SuccessCriteriaMet", "Complete"]
    assert job.status.completion_time is not None
    await batch.delete_namespaced_job("ok-job", "default", propagation_policy="Background")


# --------------------------------------------------------------------------- differences found
# Each of these failed on the sandbox when the real API server first judged it; the sandbox was
# fixed to match.


async def test_a_failed_job_records_failure_target_then_failed(
    backend: Backend, eventually: Any
) -> None:
    batch = client.BatchV1Api(backend.api)
    backend.script_fault("fail-job", PodFault("crash", exit_code=3, after_seconds=0.05))
    body = {
        "metadata": {"name": "fail-job"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "nodeName": backend.fleet[1].name,
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                }
            },
        },
    }
    await batch.create_namespaced_job("default", body)

    async def failed() -> Any:
        job = await batch.read_namespaced_job("fail-job", "default")
        done = [c.type for c in job.status.conditions or [] if c.status == "True"]
        return job if "Failed" in done else None

    job = await eventually(failed, 30)
    assert [(c.type, c.reason) for c in job.status.conditions] == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    raw = backend.api.sanitize_for_serialization(job)["status"]
    assert raw["failed"] == 1 and "active" not in raw and "succeeded" not in raw
    await batch.delete_namespaced_job("fail-job", "default", propagation_policy="Background")


async def test_deleting_a_pending_pod_on_a_node_is_graceful(
    backend: Backend, eventually: Any
) -> None:
    core = client.CoreV1Api(backend.api)
    backend.script_fault("stuck", PodFault("image_pull"))
    body = {
        "metadata": {"name": "stuck", "labels": {"job-name": "stuck"}},
        "spec": {"nodeName": backend.fleet[1].name, "containers": [{"name": "c", "image": "x"}]},
    }
    await core.create_namespaced_pod("default", body)

    async def backing_off() -> bool:
        pod = await core.read_namespaced_pod("stuck", "default")
        statuses = pod.status.container_statuses or []
        return bool(statuses and statuses[0].state.waiting)

    await eventually(backing_off)
    # Pending, but bound to a node: the API server waits for the kubelet (grace 30 s default).
    answer = await core.delete_namespaced_pod("stuck", "default")
    assert answer.metadata.deletion_timestamp is not None
    assert answer.metadata.deletion_grace_period_seconds == 30

    async def gone() -> bool:
        names = {p.metadata.name for p in (await core.list_namespaced_pod("default")).items}
        return "stuck" not in names

    await eventually(gone)


async def test_a_pod_naming_an_unknown_runtime_class_is_refused(backend: Backend) -> None:
    core = client.CoreV1Api(backend.api)
    body = {
        "metadata": {"name": "no-runtime"},
        "spec": {
            "runtimeClassName": "no-such-runtime",
            "containers": [{"name": "c", "image": "x"}],
        },
    }
    with pytest.raises(client.ApiException) as caught:
        await core.create_namespaced_pod("default", body)
    assert caught.value.status == 403
    message = json.loads(caught.value.body)["message"]
    assert 'pod rejected: RuntimeClass "no-such-runtime" not found' in message


async def test_strict_field_validation_refuses_unknown_fields(backend: Backend) -> None:
    core = client.CoreV1Api(backend.api)
    body = {"metadata": {"name": "strict", "colour": "red"}, "data": {}, "bogus": 1}
    with pytest.raises(client.ApiException) as caught:
        await core.create_namespaced_config_map("default", body, field_validation="Strict")
    assert caught.value.status == 400
    message = json.loads(caught.value.body)["message"]
    assert 'strict decoding error: unknown field "' in message
    assert '"bogus"' in message and '"metadata.colour"' in message
    await core.create_namespaced_config_map("default", {"metadata": {"name": "strict"}})
    await core.delete_namespaced_config_map("strict", "default")


async def test_foreground_deletion_marks_the_owner_even_without_dependents(
    backend: Backend, eventually: Any
) -> None:
    apps = client.AppsV1Api(backend.api)
    labels = {"app": "fg"}
    body = {
        "metadata": {"name": "fg"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
    await apps.create_namespaced_deployment("default", body)
    answer = await apps.delete_namespaced_deployment(
        "fg", "default", propagation_policy="Foreground", _preload_content=False
    )
    deleted = json.loads(await answer.read())
    # The object itself comes back, terminating; the garbage collector removes it.
    assert deleted["kind"] == "Deployment"
    assert deleted["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in deleted["metadata"]["finalizers"]

    async def gone() -> bool:
        names = {d.metadata.name for d in (await apps.list_namespaced_deployment("default")).items}
        return "fg" not in names

    await eventually(gone)
