"""The sandbox speaks enough of the Kubernetes API for kubernetes-asyncio: watch resume and
expiry, optimistic concurrency, patches, collections, controllers, leases, logs."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client, watch

from gepetto_core.adapters.kube_connect import connect_api
from gepetto_sandbox.cluster import SandboxCluster, build_fleet


def pod_body(name: str, node: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {"app": "proto"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }


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
