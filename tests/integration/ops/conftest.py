"""A session-wide cluster sandbox (over real HTTP) for the leader-election tests, and
`lease_backend`: the sandbox or the real API server (the `realkube` tier, tests/conftest.py)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from gepetto_core.adapters.kube_connect import connect_api
from gepetto_sandbox.cluster import SandboxCluster


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sandbox(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SandboxCluster]:
    kubeconfig = tmp_path_factory.mktemp("ops-kube") / "kubeconfig"
    cluster = SandboxCluster(nodes=[], kubeconfig_path=kubeconfig)
    await cluster.start()
    yield cluster
    await cluster.stop()


@pytest.fixture(scope="session")
def kubeconfig_path(sandbox: SandboxCluster) -> Path:
    assert sandbox._kubeconfig_path is not None
    return Path(sandbox._kubeconfig_path)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api(kubeconfig_path: Path) -> AsyncIterator[client.ApiClient]:
    api_client = await connect_api(kubeconfig_path)
    yield api_client
    await api_client.close()


@dataclass
class LeaseBackend:
    """Where candidates campaign: their kubeconfig, the Lease name, and an admin client to
    read the Lease with. On the real API server the candidates are gepetto's ServiceAccount,
    which the Role of k8s/ only lets near the Lease named `gepetto-leader`."""

    name: str
    kubeconfig: Path
    lease: str
    api: client.ApiClient


@pytest.fixture(
    scope="session", params=["sandbox", pytest.param("real", marks=pytest.mark.realkube)]
)
def lease_world(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("sandbox" if request.param == "sandbox" else "real_cluster")


@pytest_asyncio.fixture(loop_scope="session")
async def lease_backend(lease_world: Any, tmp_path: Path) -> AsyncIterator[LeaseBackend]:
    if isinstance(lease_world, SandboxCluster):
        assert lease_world._kubeconfig_path is not None
        api = await connect_api(lease_world.kubeconfig())
        yield LeaseBackend(
            "sandbox",
            Path(lease_world._kubeconfig_path),
            f"gepetto-proc-{uuid.uuid4().hex[:8]}",
            api,
        )
        await api.close()
        return
    kubeconfig = tmp_path / "gepetto.kubeconfig"
    kubeconfig.write_text(json.dumps(lease_world.gepetto_kubeconfig()))
    api = await connect_api(lease_world.kubeconfig())
    coordination = client.CoordinationV1Api(api)
    with contextlib.suppress(client.ApiException):
        await coordination.delete_namespaced_lease("gepetto-leader", "chutes")
    yield LeaseBackend("real", kubeconfig, "gepetto-leader", api)
    with contextlib.suppress(client.ApiException):
        await coordination.delete_namespaced_lease("gepetto-leader", "chutes")
    await api.close()
