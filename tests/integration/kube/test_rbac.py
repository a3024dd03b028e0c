"""gepetto's RBAC on a real API server: as its ServiceAccount, bound to exactly the Role and
ClusterRole of k8s/, a deploy → reconcile reads → undeploy → leader-election cycle passes
(sufficient), and without any single rule of either the same cycle fails (minimal)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.adapters.kube_connect import connect_api
from gepetto_core.adapters.kube_lease import KubeLease
from gepetto_core.errors import ClusterError
from gepetto_core.services.leader import LeaderElector
from gepetto_sandbox.control_plane.bootstrap import apply_rbac, rbac_manifests

pytestmark = pytest.mark.realkube
NAMESPACE = "chutes"
USER = "system:serviceaccount:chutes:gepetto"
GROUPS = ["system:serviceaccounts", "system:serviceaccounts:chutes", "system:authenticated"]
LEASE = "gepetto-leader"
ROLE_RULES: list[dict[str, Any]] = rbac_manifests()["Role"]["rules"]
CLUSTER_RULES: list[dict[str, Any]] = rbac_manifests()["ClusterRole"]["rules"]


class CycleFailed(Exception):
    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(f"at step '{step}': {error}")
        self.step = step


class ForbiddenLog(logging.Handler):
    """The leader elector logs (and retries) API failures; a 403 among them ends the cycle."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "HTTP 403" in message:
            self.seen.append(message)


async def gepetto_cycle(real: Any, cluster: KubeCluster, rows: Any) -> None:
    """Every call gepetto makes, in the order a miner's life makes them. Raises CycleFailed."""
    step = "start"
    admin = real.api
    node = real.fleet[5]
    server, chute = rows.server(node), rows.chute(chutes_version="0.2.9")  # code ConfigMap too
    deployment = rows.deployment(chute, server, config_id="cfg-rbac")
    dep_id = deployment.deployment_id
    legacy_id = f"legacy-{dep_id[:8]}"
    try:
        step = "deploy (configmap, service, job)"
        await cluster.deploy_chute(chute, server, rows.gpus(node, 1), deployment, ko.LaunchParams())
        step = "read the job until its pod is ready"
        async with asyncio.timeout(30):
            while True:
                if (await cluster.get_chute_job(dep_id)).ready:
                    break
                await asyncio.sleep(0.05)
        step = "reconcile: list jobs, legacy deployments, services, nodes"
        assert dep_id in {j.deployment_id for j in await cluster.list_chute_jobs()}
        await cluster.list_legacy_deployments()
        assert dep_id in {s.deployment_id for s in await cluster.list_chute_services()}
        assert node.name in {n.name for n in await cluster.list_nodes(None)}
        step = "reconcile: launch configs in use"
        assert "cfg-rbac" in await cluster.config_ids_in_use()
        step = "node disk (node, pods of every namespace)"
        cluster.invalidate_disk()
        assert (await cluster.node_disk(node.name)).requested_gib > 0
        step = "log tail of the chute"
        assert await cluster.pod_log_tail(dep_id)
        step = "refresh the code configmap"
        await cluster.ensure_code_configmap(chute.model_copy(update={"code": "v2"}), replace=True)
        step = "undeploy a legacy deployment"
        await client.AppsV1Api(admin).create_namespaced_deployment(
            NAMESPACE, legacy_deployment(legacy_id, node.name)
        )
        assert legacy_id in {d.deployment_id for d in await cluster.list_legacy_deployments()}
        await cluster.undeploy(legacy_id, wait_seconds=1)
        step = "undeploy, watching the pods go"
        real.kubelet.hold_deletions()  # the pods outlive the first list: undeploy must watch
        try:
            assert await cluster.undeploy(dep_id, wait_seconds=1) is False
        finally:
            real.kubelet.release_deletions()
        assert await cluster.undeploy(dep_id, wait_seconds=60) is True
        step = "delete the code configmap"
        await cluster.delete_code_configmap(chute.chute_id, chute.version)
        step = "leader election (create, read, renew, release the Lease)"
        await lead_once(real, cluster)
    except (ClusterError, AssertionError, TimeoutError) as e:
        raise CycleFailed(step, e) from e


def legacy_deployment(dep_id: str, node: str) -> dict[str, Any]:
    labels = {"chutes/chute": "true", "chutes/deployment-id": dep_id, "chutes/chute-id": "old"}
    return {
        "metadata": {"name": f"chute-{dep_id}", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"chutes/deployment-id": dep_id}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeName": node, "containers": [{"name": "chute", "image": "x"}]},
            },
        },
    }


async def lead_once(real: Any, cluster: KubeCluster) -> None:
    """gepetto's elector, on gepetto's credentials, takes the Lease, renews it once, and hands
    it back when stopped. A 403 logged by the elector fails at once."""
    coordination = client.CoordinationV1Api(real.api)
    forbidden = ForbiddenLog()
    logger = logging.getLogger("gepetto_core.services.leader")
    logger.addHandler(forbidden)
    stop = asyncio.Event()

    async def work() -> None:
        await asyncio.Event().wait()

    elector = LeaderElector(KubeLease(cluster._api, NAMESPACE, LEASE), "gepetto-rbac", 3, 0.2, work)
    task = asyncio.create_task(elector.run(stop))
    try:
        async with asyncio.timeout(30):
            while True:
                if forbidden.seen:
                    raise ClusterError(forbidden.seen[0], 403)
                if elector.is_leader:
                    lease = await coordination.read_namespaced_lease(LEASE, NAMESPACE)
                    if lease.spec.renew_time != lease.spec.acquire_time:
                        break  # renewed
                await asyncio.sleep(0.05)
        stop.set()
        await task
        if forbidden.seen:
            raise ClusterError(forbidden.seen[0], 403)
        lease = await coordination.read_namespaced_lease(LEASE, NAMESPACE)
        assert lease.spec.holder_identity in (None, ""), "the lease was not released"
    finally:
        stop.set()
        logger.removeHandler(forbidden)
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def cleanup(real: Any) -> None:
    """Whatever a failed cycle left behind, removed as admin."""
    real.kubelet.release_deletions()
    core, batch, apps = (
        client.CoreV1Api(real.api),
        client.BatchV1Api(real.api),
        client.AppsV1Api(real.api),
    )
    selector = "chutes/chute=true"
    await batch.delete_collection_namespaced_job(
        NAMESPACE, label_selector=selector, propagation_policy="Background"
    )
    await apps.delete_collection_namespaced_deployment(NAMESPACE, label_selector=selector)
    for service in (await core.list_namespaced_service(NAMESPACE, label_selector=selector)).items:
        await core.delete_namespaced_service(service.metadata.name, NAMESPACE)
    await core.delete_collection_namespaced_config_map(NAMESPACE, label_selector=selector)
    with contextlib.suppress(client.ApiException):
        await client.CoordinationV1Api(real.api).delete_namespaced_lease(LEASE, NAMESPACE)


async def allowed(real: Any, rule: dict[str, Any], verb: str, scoped: bool) -> bool:
    group = rule["apiGroups"][0]
    resource, _, subresource = rule["resources"][0].partition("/")
    names = rule.get("resourceNames") or [None]
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": USER,
            "groups": GROUPS,
            "resourceAttributes": {
                "group": group,
                "resource": resource,
                "subresource": subresource or None,
                "verb": verb,
                "name": names[0],
                "namespace": NAMESPACE if scoped else None,
            },
        },
    }
    answer = await client.AuthorizationV1Api(real.api).create_subject_access_review(review)
    return bool(answer.status.allowed)


async def settle(real: Any, rule: dict[str, Any], scoped: bool, *, granted: bool) -> None:
    """Wait until the authorizer has seen the RBAC change (its caches fill from watches):
    while granted, every verb of the rule is allowed; once removed, at least one is not (if
    none ever is, the rule grants nothing the others do not: it is redundant)."""
    async with asyncio.timeout(20):
        while True:
            verdicts = [await allowed(real, rule, v, scoped) for v in rule["verbs"]]
            if (granted and all(verdicts)) or (not granted and not all(verdicts)):
                return
            await asyncio.sleep(0.05)


@pytest.fixture
async def real(real_cluster: Any) -> AsyncIterator[Any]:
    await cleanup(real_cluster)
    yield real_cluster
    await cleanup(real_cluster)
    await apply_rbac(real_cluster.api, NAMESPACE)
    for rule in ROLE_RULES:
        await settle(real_cluster, rule, True, granted=True)
    for rule in CLUSTER_RULES:
        await settle(real_cluster, rule, False, granted=True)


@pytest.fixture
async def gepetto(real: Any, settings: ko.JobSettings) -> AsyncIterator[KubeCluster]:
    api = await connect_api(real.gepetto_kubeconfig())
    yield KubeCluster(api, settings, request_timeout=10)
    await api.close()


async def test_the_manifests_rbac_is_sufficient(real: Any, gepetto: KubeCluster, rows: Any) -> None:
    await gepetto_cycle(real, gepetto, rows)


def _describe(rule: dict[str, Any]) -> str:
    names = f" named {rule['resourceNames']}" if rule.get("resourceNames") else ""
    group = rule["apiGroups"][0] or "core"
    return f"{rule['verbs']} on {group}/{rule['resources'][0]}{names}"


RULES = [("Role", i) for i in range(len(ROLE_RULES))] + [
    ("ClusterRole", i) for i in range(len(CLUSTER_RULES))
]


@pytest.mark.parametrize(("kind", "index"), RULES, ids=[f"{k}-{i}" for k, i in RULES])
async def test_every_rule_is_needed(
    real: Any, gepetto: KubeCluster, rows: Any, kind: str, index: int
) -> None:
    rules = copy.deepcopy(ROLE_RULES if kind == "Role" else CLUSTER_RULES)
    removed = rules.pop(index)
    if kind == "Role":
        await apply_rbac(real.api, NAMESPACE, role_rules=rules)
    else:
        await apply_rbac(real.api, NAMESPACE, cluster_role_rules=rules)
    await settle(real, removed, kind == "Role", granted=False)
    with pytest.raises(CycleFailed) as caught:
        await gepetto_cycle(real, gepetto, rows)
    print(f"\nwithout the {kind} rule {_describe(removed)}: the cycle failed {caught.value}")
    assert "403" in str(caught.value) or "Forbidden" in str(caught.value)
