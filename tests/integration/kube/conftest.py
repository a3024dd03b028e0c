"""A session-wide SandboxCluster reached over real HTTP by kubernetes-asyncio (and kubectl)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.adapters.kube_connect import connect_api
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_sandbox.cluster import FleetNode, PodTimings, SandboxCluster, build_fleet

T = TypeVar("T")
MINER = "5MinerHotkeyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
FAST = PodTimings(start_seconds=0.02, ready_seconds=0.02, termination_seconds=0.05)


@pytest.fixture(scope="session")
def fleet() -> list[FleetNode]:
    return build_fleet(seed=7, count=8, tee_every=4)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sandbox(
    fleet: list[FleetNode], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SandboxCluster]:
    kubeconfig = tmp_path_factory.mktemp("kube") / "kubeconfig"
    cluster = SandboxCluster(seed=7, nodes=fleet, timings=FAST, kubeconfig_path=kubeconfig)
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


@pytest.fixture(scope="session")
def settings() -> ko.JobSettings:
    return ko.JobSettings(miner_ss58=MINER, namespace="chutes", shutdown_seconds=5)


@pytest.fixture(scope="session")
def cluster(api: client.ApiClient, settings: ko.JobSettings) -> KubeCluster:
    return KubeCluster(api, settings, request_timeout=10)


class Rows:
    """Inventory rows for a fleet node, as the database would hold them."""

    @staticmethod
    def server(node: FleetNode) -> Server:
        return Server(
            server_id=node.uid,
            validator=node.validator,
            name=node.name,
            ip_address=node.external_ip,
            gpu_count=node.gpu_count,
            cpu_per_gpu=4,
            memory_per_gpu=32,
            hourly_cost=2.0,
            is_tee=node.tee,
        )

    @staticmethod
    def gpus(node: FleetNode, count: int) -> list[Gpu]:
        return [
            Gpu(gpu_id=g, server_id=node.uid, model_short_ref=node.gpu_type, verified=True)
            for g in node.gpu_ids[:count]
        ]

    @staticmethod
    def chute(gpu_count: int = 1, chutes_version: str = "0.3.61", tee: bool = False) -> Chute:
        chute_id = str(uuid.uuid4())
        return Chute(
            chute_id=chute_id,
            validator=build_fleet()[0].validator,
            image="alice/model:1.0",
            code="print('chute')",
            filename="chute_file.py",
            ref_str="chute_file:chute",
            version=f"v{chute_id[:8]}",
            gpu_count=gpu_count,
            chutes_version=chutes_version,
            tee=tee,
        )

    @staticmethod
    def deployment(chute: Chute, server: Server, **extra: str) -> Deployment:
        return Deployment(
            deployment_id=str(uuid.uuid4()),
            validator=server.validator,
            chute_id=chute.chute_id,
            server_id=server.server_id,
            version=chute.version,
            **extra,
        )


@pytest.fixture(scope="session")
def rows() -> type[Rows]:
    return Rows


@pytest.fixture(scope="session")
def eventually() -> Callable[..., Awaitable[object]]:
    return _eventually


async def _eventually(check: Callable[[], Awaitable[T | None]], seconds: float = 60.0) -> T:
    """Poll until `check` returns something truthy; fail (not time) after `seconds`."""
    async with asyncio.timeout(seconds):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.02)
