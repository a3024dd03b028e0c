"""`FleetCluster` over `DirectSource` and `ServerClusters` against four sandbox server clusters
over real HTTP: reads that survive a refusing and a hanging cluster, a rotated or removed
kubeconfig, writes that land only in the server's own cluster, the delete preflight, the code
ConfigMap fan-out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.cluster_source import ClusterRead
from gepetto_core.adapters.direct_source import DirectSource
from gepetto_core.adapters.kube_fleet import FleetCluster
from gepetto_core.adapters.server_clusters import ServerClusters
from gepetto_core.errors import ClusterNotFoundError, ClusterUnavailableError
from gepetto_core.models.cluster import DeployedChute
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_sandbox.cluster import FleetNode, build_fleet
from gepetto_sandbox.miner import server_row
from gepetto_sandbox.multicluster import MultiClusterSandbox

from .conftest import eventually, job_body

TIMEOUT = 1.0
SECRET = "s3cr3t-token-0123456789abcdef"


@pytest.fixture
def fleet() -> list[FleetNode]:
    """Four servers; the last one is a TEE VM."""
    return build_fleet(seed=23, count=4, gpu_types=("h100", "a6000", "h200", "l40s"), tee_every=4)


def server_of(node: FleetNode, clusters: MultiClusterSandbox) -> Server:
    row = Server(
        server_id=node.uid,
        validator=node.validator,
        name=node.name,
        ip_address=node.external_ip,
        gpu_count=node.gpu_count,
        hourly_cost=2.0,
        is_tee=node.tee,
    )
    return server_row(row, clusters)


@dataclass
class Rig:
    clusters: MultiClusterSandbox
    nodes: list[FleetNode]
    rows: dict[str, Server]
    clients: ServerClusters
    fleet: FleetCluster
    loads: list[int] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def node(self, name: str) -> FleetNode:
        return next(n for n in self.nodes if n.name == name)

    def objects(self, name: str, kind: str, selector: str | None = None) -> list[str]:
        found = self.clusters.cluster(name).objects(kind, "chutes", selector)
        return [o["metadata"]["name"] for o in found]

    async def deploy(self, name: str, chutes_version: str = "0.3.61") -> Deployment:
        node, server = self.node(name), self.rows[name]
        chute = new_chute(node.validator, chutes_version)
        deployment = Deployment(
            deployment_id=str(uuid.uuid4()),
            validator=node.validator,
            chute_id=chute.chute_id,
            server_id=node.uid,
            version=chute.version,
        )
        gpus = [
            Gpu(
                gpu_id=node.gpu_ids[0],
                server_id=node.uid,
                model_short_ref=node.gpu_type,
                verified=True,
            )
        ]
        done = await self.fleet.deploy_chute(chute, server, gpus, deployment, ko.LaunchParams())
        assert isinstance(done, DeployedChute)
        return deployment


def new_chute(validator: str, chutes_version: str = "0.3.61", tee: bool = False) -> Chute:
    chute_id = str(uuid.uuid4())
    return Chute(
        chute_id=chute_id,
        validator=validator,
        image="alice/model:1.0",
        code="print('chute')",
        filename="chute_file.py",
        ref_str="chute_file:chute",
        version=f"v{chute_id[:8]}",
        gpu_count=1,
        chutes_version=chutes_version,
        tee=tee,
    )


@pytest_asyncio.fixture
async def rig(clusters: MultiClusterSandbox, fleet: list[FleetNode]) -> AsyncIterator[Rig]:
    rows = {n.name: server_of(n, clusters) for n in fleet}
    settings = ko.JobSettings(miner_ss58="5Miner", namespace="chutes", shutdown_seconds=1)
    clients = ServerClusters(settings, timeout=TIMEOUT)
    source = DirectSource(clients, namespace="chutes", timeout=TIMEOUT, fanout=3)
    loads: list[int] = []

    async def load_servers() -> list[Server]:
        loads.append(1)
        return list(rows.values())

    fleet_cluster = FleetCluster(
        clients, source, load_servers, namespace="chutes", timeout=TIMEOUT, fanout=3
    )
    yield Rig(clusters, fleet, rows, clients, fleet_cluster, loads)
    await fleet_cluster.close()


def states(rig: Rig) -> dict[str, str]:
    return {h.name: h.state for h in rig.fleet.cluster_health()}


# --------------------------------------------------------------------------- reads


async def test_a_round_reads_every_cluster_and_joins_pods_to_jobs(rig: Rig) -> None:
    deployment = await rig.deploy(rig.names[1])

    async def ready() -> bool:
        reading = await rig.fleet.read_fleet()
        return any(
            j.deployment_id == deployment.deployment_id and j.ready for j in reading.jobs or []
        )

    await eventually(ready)
    reading = await rig.fleet.read_fleet()
    assert reading.unknown == {}
    assert sorted(n.name for n in reading.nodes or []) == sorted(rig.names)
    assert [j.node_name for j in reading.jobs or []] == [rig.names[1]]
    assert [s.deployment_id for s in reading.services or []] == [deployment.deployment_id]
    assert set(states(rig).values()) == {"reachable"}
    pods = await rig.fleet.list_pods(
        label_selector=f"{ko.LABEL_DEPLOYMENT_ID}={deployment.deployment_id}"
    )
    assert [p.node_name for p in pods] == [rig.names[1]]
    workers = await rig.fleet.list_nodes()
    assert sorted(n.name for n in workers) == sorted(rig.names)  # every member is a worker
    assert await rig.fleet.list_nodes("no-such-label") == []


async def test_a_refusing_and_a_hanging_cluster_are_unknown_and_the_rest_is_read(rig: Rig) -> None:
    refusing, hanging, *fine = rig.names
    await rig.fleet.read_fleet()  # all seen once
    await rig.clusters.stop_api(refusing)
    rig.clusters.hang_api(hanging)
    reading = await rig.fleet.read_fleet()
    assert sorted(reading.unknown) == sorted([refusing, hanging])
    assert reading.unknown[hanging] == f"timed out after {TIMEOUT:g} s"
    assert reading.unknown[refusing].startswith("list ")
    assert "Cannot connect" in reading.unknown[refusing]
    assert sorted(n.name for n in reading.nodes or []) == sorted(fine)
    health = {h.name: h for h in reading.health}
    assert health[refusing].state == health[hanging].state == "unreachable"
    assert health[hanging].last_seen is not None  # carried from the good read
    assert {health[n].state for n in fine} == {"reachable"}
    # writes to a known-unreachable cluster are refused at once, with the reason
    with pytest.raises(ClusterUnavailableError, match=f"cluster {hanging} unreachable"):
        await rig.deploy(hanging)
    rig.clusters.release_api(hanging)
    await rig.clusters.start_api(refusing)
    reading = await rig.fleet.read_fleet()
    assert reading.unknown == {}
    assert set(states(rig).values()) == {"reachable"}


async def test_concurrent_reads_share_one_round(rig: Rig) -> None:
    first, second = await asyncio.gather(rig.fleet.read_fleet(), rig.fleet.read_fleet())
    assert first == second
    assert len(rig.loads) == 1
    name = rig.names[0]
    node_lists = [r for r in rig.clusters.cluster(name).requests if r.path == "/api/v1/nodes"]
    assert len(node_lists) == 1


async def test_a_rotated_kubeconfig_rebuilds_the_client(rig: Rig) -> None:
    name = rig.names[2]
    await rig.fleet.read_fleet()
    old_api = rig.clients.api(name)
    new_text = rig.clusters.rotate_credentials(name)
    reading = await rig.fleet.read_fleet()
    assert "401" in reading.unknown[name]  # the stored row still has the old token
    rig.rows[name] = rig.rows[name].model_copy(update={"kubeconfig": new_text})
    reading = await rig.fleet.read_fleet()
    assert reading.unknown == {}
    assert rig.clients.api(name) is not old_api
    await rig.clients.settle()
    assert getattr(old_api, "closed", False)
    await rig.deploy(name)  # writes use the new credential too
    assert len(rig.objects(name, "jobs")) == 1
    # rotated again: the row a deploy is given wins over the one the last round loaded
    rig.rows[name] = rig.rows[name].model_copy(
        update={"kubeconfig": rig.clusters.rotate_credentials(name)}
    )
    await rig.deploy(name)
    assert len(rig.objects(name, "jobs")) == 2


async def test_a_removed_server_loses_its_client(rig: Rig) -> None:
    name = rig.names[0]
    await rig.fleet.read_fleet()
    api = rig.clients.api(name)
    await client.CoreV1Api(api).list_node()  # connected
    del rig.rows[name]
    reading = await rig.fleet.read_fleet()
    await rig.clients.settle()
    assert getattr(api, "closed", False)
    assert name not in {h.name for h in reading.health}
    assert name not in {n.name for n in reading.nodes or []}
    with pytest.raises(ClusterUnavailableError, match=name):
        rig.clients.get(name)
    with pytest.raises(ClusterUnavailableError, match="client closed"):
        await client.CoreV1Api(api).list_node()


async def test_a_bad_or_missing_kubeconfig_is_an_unknown_cluster_without_secrets(
    rig: Rig,
) -> None:
    broken, missing, bad_ca, *_ = rig.names
    rig.rows[broken] = rig.rows[broken].model_copy(
        update={"kubeconfig": f"users:\n- name: x\n  user: {{token: {SECRET}\n  : ]["}
    )
    rig.rows[missing] = rig.rows[missing].model_copy(update={"kubeconfig": None})
    kubeconfig = rig.clusters.kubeconfig(bad_ca)
    kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] = SECRET + "!!"
    kubeconfig["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    kubeconfig["users"][0]["user"]["token"] = SECRET
    rig.rows[bad_ca] = rig.rows[bad_ca].model_copy(update={"kubeconfig": str(kubeconfig)})
    reading = await rig.fleet.read_fleet()
    assert sorted(reading.unknown) == sorted([broken, missing, bad_ca])
    assert reading.unknown[missing] == "no kubeconfig stored"
    health = {h.name: h for h in reading.health}
    assert health[missing].state == health[broken].state == "unknown"
    for name in (broken, missing, bad_ca):
        assert SECRET not in reading.unknown[name]
        assert SECRET not in (health[name].error or "")
        with pytest.raises(ClusterUnavailableError) as caught:
            await rig.deploy(name)
        assert SECRET not in str(caught.value) and name in str(caught.value)
    assert len(reading.nodes or []) == 1


# --------------------------------------------------------------------------- writes


async def test_a_deploy_lands_only_in_the_servers_cluster(rig: Rig) -> None:
    target = rig.names[1]
    deployment = await rig.deploy(target, chutes_version="0.3.50")  # mounts its code
    selector = f"{ko.LABEL_DEPLOYMENT_ID}={deployment.deployment_id}"
    for name in rig.names:
        expected = 1 if name == target else 0
        assert len(rig.objects(name, "jobs", selector)) == expected, name
        assert len(rig.objects(name, "services", selector)) == expected, name
        assert len(rig.objects(name, "configmaps", f"{ko.LABEL_CODE}=true")) == expected, name


async def test_undeploy_goes_where_the_job_was_seen_or_to_the_servers_cluster(rig: Rig) -> None:
    seen_one, by_server = rig.names[0], rig.names[2]
    first = await rig.deploy(seen_one)
    await rig.fleet.read_fleet()
    assert await rig.fleet.undeploy(first.deployment_id, wait_seconds=30)
    assert rig.objects(seen_one, "jobs") == [] and rig.objects(seen_one, "services") == []

    second = await rig.deploy(by_server)
    fresh = FleetCluster(  # knows nothing yet: the server id routes the delete
        rig.clients, DirectSource(rig.clients, namespace="chutes", timeout=TIMEOUT, fanout=3),
        lambda: _rows(rig), namespace="chutes", timeout=TIMEOUT, fanout=3,
    )  # fmt: skip
    others = {n: len(rig.clusters.cluster(n).requests) for n in rig.names if n != by_server}
    assert await fresh.undeploy(
        second.deployment_id, wait_seconds=30, server_id=rig.node(by_server).uid
    )
    assert rig.objects(by_server, "jobs") == []
    for name, before in others.items():
        assert not [r for r in rig.clusters.cluster(name).requests[before:] if r.method == "DELETE"]


async def _rows(rig: Rig) -> list[Server]:
    return list(rig.rows.values())


async def test_get_chute_job_is_live_and_not_found_only_when_every_cluster_was_read(
    rig: Rig,
) -> None:
    deployment = await rig.deploy(rig.names[1])
    job = await rig.fleet.get_chute_job(deployment.deployment_id)
    assert job.node_name == rig.names[1]
    with pytest.raises(ClusterNotFoundError):
        await rig.fleet.get_chute_job(str(uuid.uuid4()))
    await rig.clusters.stop_api(rig.names[0])
    with pytest.raises(ClusterUnavailableError, match=rig.names[0]):
        await rig.fleet.get_chute_job(str(uuid.uuid4()))


# --------------------------------------------------------------------------- preflight


async def running(rig: Rig, deployment: Deployment) -> None:
    """Until a read shows the deployment's pod ready (its Job then stops changing)."""

    async def ready() -> bool:
        reading = await rig.fleet.read_fleet()
        jobs = [j for j in reading.jobs or [] if j.deployment_id == deployment.deployment_id]
        return bool(jobs) and jobs[0].ready and jobs[0].status.ready == 1

    await eventually(ready)
    await rig.fleet.read_fleet()


async def test_preflight_allows_the_normal_case_and_orphans(rig: Rig) -> None:
    name = rig.names[0]
    deployment = await rig.deploy(name)
    await running(rig, deployment)
    assert await rig.fleet.delete_preflight(deployment.deployment_id, rig.node(name).uid) is None
    assert await rig.fleet.delete_preflight(deployment.deployment_id, None) is None
    assert await rig.fleet.delete_preflight(deployment.deployment_id, "no-such-server") is None
    # the cached Job was deleted since: the live read's 404 is not staleness
    await client.BatchV1Api(rig.clients.api(name)).delete_namespaced_job(
        ko.job_name(deployment.deployment_id), "chutes"
    )
    assert await rig.fleet.delete_preflight(deployment.deployment_id, rig.node(name).uid) is None


async def test_preflight_vetoes_a_job_in_another_or_in_two_clusters(rig: Rig) -> None:
    server, other = rig.names[0], rig.names[1]
    dep_id = str(uuid.uuid4())
    await rig.fleet.read_fleet()
    batch = client.BatchV1Api(rig.clients.api(other))
    await batch.create_namespaced_job("chutes", job_body(ko.job_name(dep_id), other, dep_id))
    await rig.fleet.read_fleet()
    veto = await rig.fleet.delete_preflight(dep_id, rig.node(server).uid)
    assert veto is not None and f"in cluster {other}" in veto
    batch = client.BatchV1Api(rig.clients.api(server))
    await batch.create_namespaced_job("chutes", job_body(ko.job_name(dep_id), server, dep_id))
    await rig.fleet.read_fleet()
    veto = await rig.fleet.delete_preflight(dep_id, rig.node(server).uid)
    assert veto is not None and "several clusters" in veto and server in veto and other in veto


async def test_preflight_vetoes_an_unreachable_cluster(rig: Rig) -> None:
    name = rig.names[2]
    deployment = await rig.deploy(name)
    rig.clusters.hang_api(name)
    await rig.fleet.read_fleet()
    veto = await rig.fleet.delete_preflight(deployment.deployment_id, rig.node(name).uid)
    assert veto == f"cluster {name} unreachable: timed out after {TIMEOUT:g} s"
    rig.clusters.release_api(name)


async def test_preflight_judges_a_fresh_read_and_vetoes_a_failed_live_read(rig: Rig) -> None:
    name = rig.names[1]
    deployment = await rig.deploy(name)
    job = ko.job_name(deployment.deployment_id)
    await rig.fleet.read_fleet()
    await running(rig, deployment)
    batch = client.BatchV1Api(rig.clients.api(name))
    await batch.patch_namespaced_job(job, "chutes", {"metadata": {"labels": {"touched": "yes"}}})
    # The Job changed since the last round; the preflight reads the server's cluster again, so
    # an operator's undeploy right after a pod became ready is not deferred.
    assert await rig.fleet.delete_preflight(deployment.deployment_id, rig.node(name).uid) is None

    rig.clusters.cluster(name).inject_api_error(rf"/jobs/{job}$", method="GET", status=500)
    veto = await rig.fleet.delete_preflight(deployment.deployment_id, rig.node(name).uid)
    assert veto is not None and "HTTP 500" in veto


# --------------------------------------------------------------------------- code config maps


async def test_code_configmaps_fan_out_to_non_tee_clusters_and_report_a_failure(
    rig: Rig,
) -> None:
    tee = next(n.name for n in rig.nodes if n.tee)
    plain = [n for n in rig.names if n != tee]
    chute = new_chute(rig.nodes[0].validator, "0.3.50")
    name = await rig.fleet.ensure_code_configmap(chute)
    assert name == ko.code_configmap_name(chute.chute_id, chute.version)
    for cluster in rig.names:
        assert rig.objects(cluster, "configmaps", f"{ko.LABEL_CODE}=true") == (
            [] if cluster == tee else [name]
        ), cluster

    down = plain[0]
    await rig.clusters.stop_api(down)
    with pytest.raises(ClusterUnavailableError) as caught:
        await rig.fleet.delete_code_configmap(chute.chute_id, chute.version)
    assert f"failed in 1 of {len(plain)} clusters: {down} (" in str(caught.value)
    for cluster in plain[1:]:
        assert rig.objects(cluster, "configmaps", f"{ko.LABEL_CODE}=true") == []
    await rig.clusters.start_api(down)
    assert rig.objects(down, "configmaps", f"{ko.LABEL_CODE}=true") == [name]
    assert await rig.fleet.ensure_code_configmap(new_chute(chute.validator, tee=True))
    assert rig.objects(tee, "configmaps", f"{ko.LABEL_CODE}=true") == []


class BrokenSource:
    kind = "monitor"

    async def read(self, names: Sequence[str]) -> dict[str, ClusterRead]:
        raise ConnectionError("redis is down")

    async def wait_pods_gone(self, name: str, deployment_id: str, wait_seconds: float) -> bool:
        raise AssertionError("not called")

    async def forget(self, name: str, gone: Sequence[tuple[str, str]]) -> None:
        raise AssertionError("not called")

    async def clear_cluster(self, name: str) -> None:
        raise AssertionError("not called")

    async def close(self) -> None:
        return None


async def test_a_failing_source_makes_every_cluster_unknown_not_empty(rig: Rig) -> None:
    broken = FleetCluster(
        rig.clients,
        BrokenSource(),
        lambda: _rows(rig),
        namespace="chutes",
        timeout=TIMEOUT,
        fanout=3,
    )
    reading = await broken.read_fleet()
    assert sorted(reading.unknown) == sorted(rig.names)
    assert "monitor source failed: ConnectionError: redis is down" in reading.unknown[rig.names[0]]
    assert {h.state for h in reading.health} == {"unreachable"}


async def test_node_disk_and_pod_logs_are_read_in_the_servers_cluster(rig: Rig) -> None:
    name, other = rig.names[1], rig.names[0]
    deployment = await rig.deploy(name)
    await running(rig, deployment)
    disk = await rig.fleet.node_disk(name)
    assert disk.node == name and disk.total_gib == rig.node(name).ephemeral_gib
    assert disk.requested_gib > 0  # the chute's pod, in that cluster only
    assert (await rig.fleet.node_disk(other)).requested_gib == 0
    lines = await rig.fleet.pod_log_tail(deployment.deployment_id)
    assert any("container started" in line for line in lines)
    assert await rig.fleet.pod_log_tail(str(uuid.uuid4())) == []
    await rig.clusters.stop_api(other)
    await rig.fleet.read_fleet()
    with pytest.raises(ClusterUnavailableError, match=f"cluster {other} unreachable"):
        await rig.fleet.node_disk(other)


async def test_pods_of_any_namespace_are_listed_live_and_a_cluster_not_read_is_named(
    rig: Rig, miner_api: dict[str, client.ApiClient]
) -> None:
    """`pods -n kube-system` (or every namespace) asks each server cluster itself, since the
    sources read only the chutes namespace; a cluster that does not answer is named, never
    shown as having no pods."""
    first, second, hanging, _ = rig.names
    for name in (first, second):
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name=f"agent-{name}", namespace="kube-system"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="a", image="agent:1")]),
        )
        await client.CoreV1Api(miner_api[name]).create_namespaced_pod("kube-system", pod)
    deployment = await rig.deploy(first)
    await rig.fleet.read_fleet()
    rig.clusters.hang_api(hanging)

    listing = await rig.fleet.read_pods("kube-system")
    assert sorted(p.name for p in listing.pods) == sorted([f"agent-{first}", f"agent-{second}"])
    assert list(listing.unread) == [hanging] and "timed out" in listing.unread[hanging]

    everything = await rig.fleet.read_pods(None)
    assert {p.namespace for p in everything.pods} == {"kube-system", "chutes"}
    assert any(
        p.labels.get(ko.LABEL_DEPLOYMENT_ID) == deployment.deployment_id for p in everything.pods
    )
    assert list(everything.unread) == [hanging]

    chutes = await rig.fleet.read_pods("chutes")  # the round's read: the same gap named
    assert {p.namespace for p in chutes.pods} <= {"chutes"} and list(chutes.unread) == [hanging]
