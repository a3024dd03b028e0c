"""`kubectl --context SERVER` against any sandbox cluster, through the merged kubeconfig."""

from __future__ import annotations

import json
from pathlib import Path

from kubernetes_asyncio import client

from gepetto_sandbox.multicluster import CONTROL_PLANE_NAME, MultiClusterSandbox
from tests.integration.kubectl_tool import kubectl, needs_kubectl

from .conftest import eventually, job_body

pytestmark = needs_kubectl


async def test_kubectl_context_per_server(
    clusters: MultiClusterSandbox,
    miner_api: dict[str, client.ApiClient],
    tmp_path: Path,
) -> None:
    kubeconfig = clusters.write_kubeconfig(tmp_path / "kubeconfig")
    first, second = clusters.names[:2]
    await client.BatchV1Api(miner_api[first]).create_namespaced_job(
        "chutes", job_body("chute-k", first)
    )

    async def pods_of(context: str) -> list[str]:
        code, out, err = await kubectl(
            kubeconfig, "--context", context, "get", "pods", "-n", "chutes", "-o", "json"
        )
        assert code == 0, err
        return [p["metadata"]["name"] for p in json.loads(out)["items"]]

    await eventually(lambda: pods_of(first), seconds=30)
    assert all(name.startswith("chute-k-") for name in await pods_of(first))
    assert await pods_of(second) == []  # another server, another cluster

    for name in clusters.names:
        code, out, err = await kubectl(kubeconfig, "--context", name, "get", "nodes")
        assert code == 0, err
        assert [line.split()[0] for line in out.splitlines()[1:]] == [name]

    # the default context is the control plane, with the node the layout is detected by
    code, out, err = await kubectl(
        kubeconfig, "get", "nodes", "-l", "node.kubernetes.io/instance-type=k3s", "-o", "name"
    )
    assert code == 0, err
    assert out.split() == [f"node/{CONTROL_PLANE_NAME}"]
