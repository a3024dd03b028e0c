"""A session-wide cluster sandbox (over real HTTP) for the leader-election tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

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
