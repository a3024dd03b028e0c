"""The sandbox speaks enough of the Kubernetes API for kubernetes-asyncio: watch resume and
expiry, optimistic concurrency, patches, collections, controllers, leases, logs."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from gepetto_core.adapters.kube_connect import connect_api
from gepetto_sandbox.cluster import SandboxCluster, build_fleet


def pod_body(name: str, node: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {"app": "proto"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }


async def collect(stream: Any, count: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    async for event in stream:
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == count:
            break
    return seen


async def test_watch_resumes_from_a_resource_version(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
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


async def test_watch_sees_objects_leaving_the_selection_as_deleted(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
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


@pytest_asyncio.fixture(loop_scope="session")
async def small_history() -> AsyncIterator[tuple[SandboxCluster, client.ApiClient]]:
    sandbox = SandboxCluster(nodes=build_fleet(count=1), history_size=5)
    await sandbox.start()
    api = await connect_api(sandbox.kubeconfig())
    yield sandbox, api
    await api.close()
    await sandbox.stop()


async def test_watch_from_an_expired_version_gets_410(
    small_history: tuple[SandboxCluster, client.ApiClient],
) -> None:
    _, api = small_history
    core = client.CoreV1Api(api)
    first = await core.create_namespaced_config_map("default", {"metadata": {"name": "e0"}})
    for i in range(1, 8):
        await core.create_namespaced_config_map("default", {"metadata": {"name": f"e{i}"}})
    stream = watch.Watch()
    with pytest.raises(client.ApiException) as caught:
        async for _ in stream.stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=first.metadata.resource_version,
            timeout_seconds=2,
        ):
            pass
    await stream.close()
    assert caught.value.status == 410


async def test_replace_with_a_stale_version_conflicts(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
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


async def test_patch_flavours_and_generation(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
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


async def test_delete_collection_by_label(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name, group in (("c1", "x"), ("c2", "x"), ("c3", "y")):
        body = {"metadata": {"name": name, "labels": {"group": group}}}
        await core.create_namespaced_config_map("default", body)
    await core.delete_collection_namespaced_config_map("default", label_selector="group=x")
    left = await core.list_namespaced_config_map("default", label_selector="group")
    assert [c.metadata.name for c in left.items] == ["c3"]
    await core.delete_namespaced_config_map("c3", "default")


async def test_pods_on_unknown_nodes_stay_pending_and_logs_are_text(
    api: client.ApiClient, sandbox: SandboxCluster, eventually: Any
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod("default", pod_body("lost", "no-such-node"))
    await core.create_namespaced_pod("default", pod_body("found", "h100-0"))

    def running(name: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            pod = await core.read_namespaced_pod(name, "default")
            return bool(pod.status.phase == "Running")

        return check

    await eventually(running("found"))
    lost = await core.read_namespaced_pod("lost", "default")
    assert lost.status.phase == "Pending"
    log = await core.read_namespaced_pod_log("found", "default")
    assert "container started" in log
    # A node that joins later lets its pending pod start.
    late = dataclasses.replace(build_fleet(seed=99, count=1)[0], name="late-node")
    await core.create_namespaced_pod("default", pod_body("waiting", "late-node"))
    assert (await core.read_namespaced_pod("waiting", "default")).status.phase == "Pending"
    sandbox.add_node(late)
    await eventually(running("waiting"))
    sandbox.remove_node("late-node")
    for name in ("lost", "found", "waiting"):
        await core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


async def test_namespaced_create_needs_the_namespace(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(client.ApiException) as caught:
        await core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert caught.value.status == 404


async def test_leader_election_over_leases(api: client.ApiClient) -> None:
    became_leader = asyncio.Event()

    async def on_started() -> None:
        became_leader.set()

    async def on_stopped() -> None:
        return None

    lock = LeaseLock("gepetto-proto", "chutes", "gepetto-0", api)
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
    lease = await client.CoordinationV1Api(api).read_namespaced_lease("gepetto-proto", "chutes")
    assert lease.spec.holder_identity == "gepetto-0"


async def test_api_latency_injection_and_request_log(
    api: client.ApiClient, sandbox: SandboxCluster
) -> None:
    sandbox.inject_api_error(r"/namespaces/default/configmaps$", method="GET", status=503, times=2)
    core = client.CoreV1Api(api)
    for _ in range(2):
        with pytest.raises(client.ApiException) as caught:
            await core.list_namespaced_config_map("default")
        assert caught.value.status == 503
    await core.list_namespaced_config_map("default")
    recent = [
        r.status for r in sandbox.requests if r.path == "/api/v1/namespaces/default/configmaps"
    ]
    assert recent[-3:] == [503, 503, 200]


async def test_job_status_follows_pods_and_succeeds(
    api: client.ApiClient, sandbox: SandboxCluster
) -> None:
    from gepetto_sandbox.cluster import PodFault

    batch = client.BatchV1Api(api)
    sandbox.script_fault("ok-job", PodFault("crash", exit_code=0, after_seconds=0.05))
    body = {
        "metadata": {"name": "ok-job"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "nodeName": "h100-0",
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                }
            },
        },
    }
    await batch.create_namespaced_job("default", body)
    async with asyncio.timeout(60):  # a hang detector
        while True:
            job = await batch.read_namespaced_job("ok-job", "default")
            if job.status.succeeded:
                break
            await asyncio.sleep(0.02)
    assert job.status.active == 0
    assert [c.type for c in job.status.conditions] == ["Complete"]
    assert job.status.completion_time is not None
    await batch.delete_namespaced_job("ok-job", "default", propagation_policy="Background")
