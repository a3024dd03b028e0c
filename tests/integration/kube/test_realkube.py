"""What only a real kube-apiserver can judge: server-side strict field validation of every
object gepetto creates, foreground deletion through the real garbage collector, and watch expiry
(410) after a real etcd compaction. RBAC is test_rbac.py."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client, watch
from pydantic import SecretStr

from gepetto_core import kube_objects as ko
from gepetto_core import kube_service
from gepetto_core.adapters.kube_lease import KubeLease
from gepetto_core.models.cluster import LeaseRecord
from gepetto_sandbox.control_plane.bootstrap import ensure_namespace

pytestmark = pytest.mark.realkube
MANIFESTS = Path(__file__).resolve().parents[3] / "k8s"
STRICT_NAMESPACE = "strict-check"

# kind -> (API path prefix, plural, namespaced)
ROUTES = {
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Job": ("/apis/batch/v1", "jobs", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases", True),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
}


async def strict_dry_run_create(api: client.ApiClient, body: dict[str, Any]) -> None:
    """POST with fieldValidation=Strict and dryRun=All: unknown or duplicate fields are a 400,
    nothing is stored. Into a namespace of its own, under another name if cluster-scoped, so
    the objects the cluster already has (gepetto's RBAC) do not answer 409 first."""
    prefix, plural, namespaced = ROUTES[body["kind"]]
    body = {**body, "metadata": {**body["metadata"]}}
    body["metadata"].pop("namespace", None)
    if namespaced:
        path = f"{prefix}/namespaces/{STRICT_NAMESPACE}/{plural}"
    else:
        path = f"{prefix}/{plural}"
        body["metadata"]["name"] += "-strict-check"
    await api.call_api(
        path,
        "POST",
        query_params=[("fieldValidation", "Strict"), ("dryRun", "All")],
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
        response_types_map={200: "object", 201: "object"},
        _return_http_data_only=True,
    )


def gepetto_objects(backend: Any, rows: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every object shape gepetto creates: the chute Service, Job (launch-config, legacy with
    the code volume, TEE, extra TCP/UDP ports, a disk request), the code ConfigMap, the Lease."""
    settings = backend.cluster.settings
    objects: list[tuple[str, dict[str, Any]]] = []
    ports = ko.normalize_job_ports([{"port": 7000, "proto": "tcp"}, {"port": 7001, "proto": "udp"}])
    cases = [
        ("launch-config chute", rows.chute(gpu_count=2), ko.LaunchParams(
            launch_token=SecretStr("jwt"), job_ports=ports, disk_gb=150)),
        ("legacy chute", rows.chute(chutes_version="0.2.9"), ko.LaunchParams()),
        ("tee chute", rows.chute(tee=True), ko.LaunchParams(vm_version="1.5.0")),
    ]  # fmt: skip
    for what, chute, launch in cases:
        node = next(n for n in backend.fleet if n.tee == chute.tee)
        server = rows.server(node)
        deployment = rows.deployment(chute, server, config_id="cfg", job_id="job")
        service = kube_service.build_chute_service(chute, deployment, settings, launch)
        objects.append((f"Service of a {what}", service))
        node_ports = {
            (p["protocol"], p["port"]): 30000 + i for i, p in enumerate(service["spec"]["ports"])
        }
        gpus = rows.gpus(node, chute.gpu_count)
        job = ko.build_chute_job(chute, server, gpus, deployment, settings, launch, node_ports)
        objects.append((f"Job of a {what}", job))
        if ko.needs_code_volume(chute):
            objects.append((f"ConfigMap of a {what}", ko.build_code_configmap(chute, "chutes")))
    lease = KubeLease(backend.api, "chutes", "gepetto-leader")
    record = LeaseRecord(holder="gepetto-0", duration_seconds=15, transitions=0)
    objects.append(("leader Lease", lease._body(record)))
    return objects


def manifest_objects() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if obj and obj.get("kind") in ROUTES:
                found.append((f"k8s/{path.name}", obj))
    return found


async def test_every_object_gepetto_creates_passes_strict_field_validation(
    real_backend: Any, rows: Any
) -> None:
    backend = real_backend
    await ensure_namespace(backend.api, STRICT_NAMESPACE)
    checked = []
    for what, body in [*gepetto_objects(backend, rows), *manifest_objects()]:
        try:
            await strict_dry_run_create(backend.api, body)
        except client.ApiException as e:
            pytest.fail(f"{what} refused by strict field validation: {e.status} {e.body}")
        checked.append(what)
    assert {"Job of a legacy chute", "leader Lease", "k8s/deployment.yaml"} <= set(checked)
    # The check has teeth: a field the API does not know is refused.
    job = gepetto_objects(backend, rows)[1][1]
    job["spec"]["template"]["spec"]["containers"][0]["gpuz"] = 1
    with pytest.raises(client.ApiException) as caught:
        await strict_dry_run_create(backend.api, job)
    assert caught.value.status == 400
    assert "strict decoding error" in caught.value.body
    assert "spec.template.spec.containers[0].gpuz" in caught.value.body


async def test_foreground_deletion_waits_for_the_pods_through_the_garbage_collector(
    real_backend: Any, real_cluster: Any, eventually: Any
) -> None:
    batch, core = client.BatchV1Api(real_backend.api), client.CoreV1Api(real_backend.api)
    name = f"gc-{uuid.uuid4().hex[:8]}"
    body = {
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "nodeName": real_backend.fleet[3].name,
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{"name": "c", "image": "busybox"}],
                }
            },
        },
    }
    await batch.create_namespaced_job("default", body)

    async def running_pod() -> Any:
        pods = await core.list_namespaced_pod("default", label_selector=f"job-name={name}")
        return next((p for p in pods.items if p.status.phase == "Running"), None)

    pod = await eventually(running_pod, 30)
    real_cluster.kubelet.hold_deletions()
    try:
        await batch.delete_namespaced_job(name, "default", propagation_policy="Foreground")

        async def pod_terminating() -> bool:
            current = await core.read_namespaced_pod(pod.metadata.name, "default")
            return current.metadata.deletion_timestamp is not None

        # The garbage collector deletes the dependents first; the Job waits, marked.
        await eventually(pod_terminating, 30)
        job = await batch.read_namespaced_job(name, "default")
        assert job.metadata.deletion_timestamp is not None
        assert "foregroundDeletion" in job.metadata.finalizers
    finally:
        real_cluster.kubelet.release_deletions()

    async def job_gone() -> bool:
        try:
            await batch.read_namespaced_job(name, "default")
        except client.ApiException as e:
            return e.status == 404
        return False

    await eventually(job_gone, 30)
    with pytest.raises(client.ApiException) as caught:
        await core.read_namespaced_pod(pod.metadata.name, "default")
    assert caught.value.status == 404


async def test_watch_from_a_compacted_version_gets_410_and_a_fresh_one_resumes(
    real_backend: Any, real_cluster: Any
) -> None:
    core = client.CoreV1Api(real_backend.api)
    label = f"compact-{uuid.uuid4().hex[:8]}"
    first = await core.create_namespaced_config_map(
        "default", {"metadata": {"name": f"{label}-0", "labels": {"run": label}}}
    )
    for i in range(1, 4):
        await core.create_namespaced_config_map(
            "default", {"metadata": {"name": f"{label}-{i}", "labels": {"run": label}}}
        )
    await real_cluster.compact_etcd()
    stream = watch.Watch()
    with pytest.raises(client.ApiException) as caught:
        async for _ in stream.stream(
            core.list_namespaced_config_map,
            "default",
            label_selector=f"run={label}",
            resource_version=first.metadata.resource_version,
            timeout_seconds=5,
        ):
            pass
    await stream.close()
    assert caught.value.status == 410

    # The client's way out: list again, watch from the list's version.
    listed = await core.list_namespaced_config_map("default", label_selector=f"run={label}")
    assert len(listed.items) == 4
    await core.delete_namespaced_config_map(f"{label}-0", "default")
    seen: tuple[str, str] | None = None
    async with watch.Watch() as again:
        async for event in again.stream(
            core.list_namespaced_config_map,
            "default",
            label_selector=f"run={label}",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=60,  # a hang detector: the event is the assertion
        ):
            seen = (event["type"], event["object"].metadata.name)
            break
    assert seen == ("DELETED", f"{label}-0")
    await core.delete_collection_namespaced_config_map("default", label_selector=f"run={label}")
