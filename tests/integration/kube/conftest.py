"""A session-wide SandboxCluster reached over real HTTP by kubernetes-asyncio (and kubectl), and
the `backend` fixture of the contract suite: the same tests against the sandbox and against a
real kube-apiserver (the `realkube` tier, see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.adapters.kube_connect import connect_api
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_sandbox.cluster import FleetNode, PodFault, PodTimings, SandboxCluster, build_fleet

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


# --------------------------------------------------------------------------- contract suite


@dataclass
class Backend:
    """One cluster the contract suite runs against. `api` is an admin client (for what the
    test itself sets up); `cluster` is gepetto's adapter with gepetto's own credentials (on the
    real API server: the ServiceAccount bound to the Role and ClusterRole of k8s/)."""

    name: str
    fleet: list[FleetNode]
    api: client.ApiClient
    cluster: KubeCluster
    kubeconfig: dict[str, Any]
    script_fault: Callable[[str, PodFault], None]
    set_node_ready: Callable[[str, bool], Awaitable[None]]

    @property
    def real(self) -> bool:
        return self.name == "real"


@pytest.fixture(
    scope="session", params=["sandbox", pytest.param("real", marks=pytest.mark.realkube)]
)
def backend_world(request: pytest.FixtureRequest) -> Any:
    """The SandboxCluster or the RealCluster (fetched here, outside the event loop, so each
    is only started when a test asks for it)."""
    return request.getfixturevalue("sandbox" if request.param == "sandbox" else "real_cluster")


@contextlib.asynccontextmanager
async def open_backend(world: Any, settings: ko.JobSettings) -> AsyncIterator[Backend]:
    admin = await connect_api(world.kubeconfig())
    try:
        if isinstance(world, SandboxCluster):

            async def sandbox_ready(name: str, ready: bool) -> None:
                world.set_node_ready(name, ready)

            yield Backend(
                "sandbox",
                world.fleet,
                admin,
                KubeCluster(admin, settings, request_timeout=10),
                world.kubeconfig(),
                world.script_fault,
                sandbox_ready,
            )
            return
        gepetto = await connect_api(world.gepetto_kubeconfig())
        try:
            yield Backend(
                "real",
                world.fleet,
                admin,
                KubeCluster(gepetto, settings, request_timeout=10),
                world.kubeconfig(),
                world.script_fault,
                world.set_node_ready,
            )
        finally:
            await gepetto.close()
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def backend(backend_world: Any, settings: ko.JobSettings) -> AsyncIterator[Backend]:
    async with open_backend(backend_world, settings) as opened:
        yield opened


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def real_backend(real_cluster: Any, settings: ko.JobSettings) -> AsyncIterator[Backend]:
    """The real backend alone (tests only a real API server can judge)."""
    async with open_backend(real_cluster, settings) as opened:
        yield opened
