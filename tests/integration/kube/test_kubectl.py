"""kubectl, with its ordinary kubeconfig, against the cluster gepetto deployed into: the sandbox
and the real API server (the contract suite's `backend`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.errors import ClusterNotFoundError
from tests.integration.kubectl_tool import kubectl, needs_kubectl

pytestmark = needs_kubectl


@pytest.fixture
def kubeconfig_file(backend: Any, tmp_path: Path) -> Path:
    """The backend's admin kubeconfig as a file (JSON is valid YAML)."""
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(backend.kubeconfig))
    return path


async def test_kubectl_get_nodes(backend: Any, kubeconfig_file: Path) -> None:
    fleet = backend.fleet
    code, out, err = await kubectl(kubeconfig_file, "get", "nodes")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["NAME", "STATUS"]
    shown = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert {f.name for f in fleet} <= set(shown)
    assert shown[fleet[0].name] == "Ready"

    code, out, err = await kubectl(
        kubeconfig_file, "get", "nodes", "-l", "chutes/tee=true", "-o", "json"
    )
    assert code == 0, err
    names = {item["metadata"]["name"] for item in json.loads(out)["items"]}
    assert names == {f.name for f in fleet if f.tee}


async def test_kubectl_sees_and_deletes_a_chute(
    backend: Any, kubeconfig_file: Path, rows: Any, eventually: Any
) -> None:
    cluster: KubeCluster = backend.cluster
    node = backend.fleet[3]  # a TEE node
    server, chute = rows.server(node), rows.chute(chutes_version="0.6.0", tee=True)
    deployment = rows.deployment(chute, server)
    dep_id = deployment.deployment_id
    deployed = await cluster.deploy_chute(
        chute, server, rows.gpus(node, 1), deployment, ko.LaunchParams()
    )

    async def running() -> bool:
        pods = await cluster.list_pods("chutes", f"chutes/deployment-id={dep_id}")
        return bool(pods) and pods[0].phase == "Running"

    await eventually(running)
    code, out, err = await kubectl(
        kubeconfig_file, "get", "jobs,pods,svc", "-n", "chutes", "-l", "chutes/chute=true"
    )
    assert code == 0, err
    assert f"job.batch/chute-{dep_id}" in out
    assert out.splitlines()[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert f"pod/chute-{dep_id}-" in out
    assert f"service/chute-service-{dep_id}" in out
    assert f"8000:{deployed.primary_port}/TCP" in out
    assert f"8002:{deployed.service.node_port(8002)}/TCP" in out
    pod_line = next(line for line in out.splitlines() if line.startswith(f"pod/chute-{dep_id}"))
    assert "Running" in pod_line and node.name not in pod_line  # NODE is a -o wide column
    code, out, err = await kubectl(
        kubeconfig_file, "get", "pods", "-n", "chutes", "-l", f"chutes/deployment-id={dep_id}",
        "-o", "wide",
    )  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0].split()[:7] == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
    ]  # fmt: skip
    assert node.name in out.splitlines()[1].split()

    code, out, err = await kubectl(
        kubeconfig_file, "delete", "job", f"chute-{dep_id}", "-n", "chutes"
    )
    assert code == 0, err
    assert f'job.batch "chute-{dep_id}" deleted' in out
    with pytest.raises(ClusterNotFoundError):
        await cluster.get_chute_job(dep_id)
    # kubectl asks for background propagation: the pods follow the Job shortly after.
    assert await cluster.wait_pods_gone(dep_id, wait_seconds=60)

    code, out, err = await kubectl(
        kubeconfig_file, "delete", "job", f"chute-{dep_id}", "-n", "chutes"
    )
    assert code != 0 and "NotFound" in err
    assert await cluster.undeploy(dep_id, wait_seconds=60)
