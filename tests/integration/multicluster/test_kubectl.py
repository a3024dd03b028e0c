"""`kubectl --context SERVER` against any sandbox cluster, through the merged kubeconfig."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from gepetto_sandbox.multicluster import CONTROL_PLANE_NAME, MultiClusterSandbox

from .conftest import eventually, job_body

KUBECTL = shutil.which("kubectl")
pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH"),
]


async def kubectl(kubeconfig: Path, *args: str) -> tuple[int, str, str]:
    """A subprocess, so the in-process API servers keep serving meanwhile."""
    assert KUBECTL is not None
    process = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--kubeconfig",
        str(kubeconfig),
        "--cache-dir",
        str(kubeconfig.parent / "kubectl-cache"),
        "--request-timeout",
        "20s",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


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
