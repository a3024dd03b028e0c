"""What a fresh control plane needs before gepetto runs on it: the `chutes` namespace, the
`nvidia` RuntimeClass, gepetto's ServiceAccount bound to exactly the Role and ClusterRole of
`k8s/`, and a token for it."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

Obj = dict[str, Any]
MANIFESTS = Path(__file__).resolve().parents[2] / "k8s"
RBAC_FILES = (
    "serviceaccount.yaml",
    "role.yaml",
    "rolebinding.yaml",
    "clusterrole.yaml",
    "clusterrolebinding.yaml",
)
SERVICE_ACCOUNT = "gepetto"
AUDIENCE = "https://kubernetes.default.svc"


def rbac_manifests(directory: Path = MANIFESTS) -> dict[str, Obj]:
    """kind -> object, for the ServiceAccount, Role, RoleBinding, ClusterRole and binding."""
    return {
        obj["kind"]: obj
        for name in RBAC_FILES
        for obj in [yaml.safe_load((directory / name).read_text())]
    }


async def ensure_namespace(api: client.ApiClient, name: str, wait_seconds: float = 60.0) -> None:
    """Create the namespace (if missing) and wait for its `default` ServiceAccount: the
    ServiceAccount admission plugin refuses pods until the controller has made it."""
    core = client.CoreV1Api(api)
    try:
        await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except ApiException as e:
        if e.status != 409:
            raise
    async with asyncio.timeout(wait_seconds):
        while True:
            try:
                await core.read_namespaced_service_account("default", name)
                return
            except ApiException as e:
                if e.status != 404:
                    raise
            await asyncio.sleep(0.1)


async def ensure_runtime_class(api: client.ApiClient, name: str = "nvidia") -> None:
    """The RuntimeClass a GPU node's operator installs; the RuntimeClass admission plugin
    refuses pods that name one the cluster does not have."""
    body = client.V1RuntimeClass(metadata=client.V1ObjectMeta(name=name), handler=name)
    try:
        await client.NodeV1Api(api).create_runtime_class(body)
    except ApiException as e:
        if e.status != 409:
            raise


async def apply_rbac(
    api: client.ApiClient,
    namespace: str,
    *,
    role_rules: Sequence[Obj] | None = None,
    cluster_role_rules: Sequence[Obj] | None = None,
) -> None:
    """Create or replace gepetto's RBAC objects from `k8s/` in `namespace`; `role_rules` /
    `cluster_role_rules` replace the manifests' rules (the minimality test removes one)."""
    objects = rbac_manifests()
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    role, cluster_role = copy.deepcopy(objects["Role"]), copy.deepcopy(objects["ClusterRole"])
    if role_rules is not None:
        role["rules"] = list(role_rules)
    if cluster_role_rules is not None:
        cluster_role["rules"] = list(cluster_role_rules)
    binding, cluster_binding = objects["RoleBinding"], copy.deepcopy(objects["ClusterRoleBinding"])
    for subject in cluster_binding["subjects"]:
        subject["namespace"] = namespace
    account = objects["ServiceAccount"]
    await _upsert(core.create_namespaced_service_account, None, namespace, account)
    await _upsert(rbac.create_namespaced_role, rbac.replace_namespaced_role, namespace, role)
    await _upsert(
        rbac.create_namespaced_role_binding, rbac.replace_namespaced_role_binding, namespace,
        binding,
    )  # fmt: skip
    await _upsert(rbac.create_cluster_role, rbac.replace_cluster_role, None, cluster_role)
    await _upsert(
        rbac.create_cluster_role_binding, rbac.replace_cluster_role_binding, None,
        cluster_binding,
    )  # fmt: skip


async def _upsert(create: Any, replace: Any, namespace: str | None, body: Obj) -> None:
    args = (namespace, body) if namespace is not None else (body,)
    try:
        await create(*args)
    except ApiException as e:
        if e.status != 409 or replace is None:
            if e.status == 409:
                return
            raise
        name = body["metadata"]["name"]
        await replace(name, *args)


async def service_account_token(
    api: client.ApiClient, namespace: str, name: str = SERVICE_ACCOUNT, seconds: int = 86400
) -> str:
    """A bound token from the TokenRequest API, as a pod's projected volume would hold."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[AUDIENCE], expiration_seconds=seconds)
    )
    answer = await client.CoreV1Api(api).create_namespaced_service_account_token(
        name, namespace, request
    )
    token: str = answer.status.token
    return token
