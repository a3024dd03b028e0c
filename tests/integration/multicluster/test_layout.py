"""N independent clusters: one endpoint, one node and one credential each, stored as the miner
stores them, plus a control plane the official code recognises as the multi-cluster layout."""

from __future__ import annotations

import json

import aiohttp
import asyncpg
import pytest
import yaml
from aiohttp import ClientConnectorError
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from gepetto_core.adapters.kube_connect import connect_api
from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.models.inventory import Server
from gepetto_sandbox.cluster import FleetNode
from gepetto_sandbox.miner import server_row
from gepetto_sandbox.multicluster import CONTROL_PLANE_NAME, MultiClusterSandbox

MINER_LABELS = ("gpu-short-ref", "chutes/validator", "chutes/worker", "chutes/external-ip")


async def test_each_server_is_its_own_cluster_with_one_node(
    clusters: MultiClusterSandbox,
    miner_api: dict[str, client.ApiClient],
    fleet: list[FleetNode],
) -> None:
    urls = {clusters.members[n].url for n in clusters.names}
    assert len(urls) == 3  # one endpoint (port) each
    for node in fleet:
        nodes = (await client.CoreV1Api(miner_api[node.name]).list_node()).items
        assert [n.metadata.name for n in nodes] == [node.name]
        labels = nodes[0].metadata.labels
        assert all(labels[k] for k in MINER_LABELS)
        assert labels["gpu-short-ref"] == node.gpu_type
        assert labels["chutes/external-ip"] == node.external_ip
        assert labels["node.kubernetes.io/instance-type"] == "k3s"
        assert (labels.get("chutes/tee") == "true") == node.tee
        capacity = nodes[0].status.capacity
        assert capacity["nvidia.com/gpu"] == str(node.gpu_count)
        assert capacity["ephemeral-storage"].endswith("Ki")
    assert [n.tee for n in fleet] == [False, False, True]


async def test_the_control_plane_has_the_k3s_node_the_official_detection_looks_for(
    clusters: MultiClusterSandbox,
) -> None:
    api = await connect_api(clusters.control_plane_kubeconfig(), context=CONTROL_PLANE_NAME)
    try:
        found = await client.CoreV1Api(api).list_node(
            label_selector="node.kubernetes.io/instance-type=k3s"
        )
        assert [n.metadata.name for n in found.items] == [CONTROL_PLANE_NAME]
        assert "nvidia.com/gpu" not in found.items[0].status.capacity
    finally:
        await api.close()


async def test_a_stored_kubeconfig_reaches_only_its_own_cluster(
    clusters: MultiClusterSandbox,
) -> None:
    first, second = clusters.names[:2]
    # first's credential sent to second's endpoint: refused there
    config = json.loads(clusters.kubeconfig_text(first))
    config["clusters"][0]["cluster"]["server"] = clusters.members[second].url
    api = await connect_api(config, context=first)
    try:
        with pytest.raises(ApiException) as refused:
            await client.CoreV1Api(api).list_node()
        assert refused.value.status == 401
        assert json.loads(refused.value.body)["reason"] == "Unauthorized"
    finally:
        await api.close()


async def test_the_stored_kubeconfig_has_the_official_shape(
    clusters: MultiClusterSandbox,
) -> None:
    for name in clusters.names:
        text = clusters.kubeconfig_text(name)
        config = json.loads(text)
        assert text == json.dumps(config)  # JSON text with Python's default separators
        assert yaml.safe_load(text) == config  # how the miner reads it back
        assert config["current-context"] == "miner"  # names no context, as ansible writes it
        assert [c["name"] for c in config["clusters"]] == [name]
        assert [u["name"] for u in config["users"]] == [name]
        assert config["contexts"] == [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}
        ]
        assert set(config["users"][0]["user"]) == {"token"}
        cluster = config["clusters"][0]["cluster"]
        assert cluster["server"].startswith("https://127.0.0.1:")
        assert set(cluster) == {"server", "certificate-authority-data"}


async def test_registration_stores_kubeconfig_and_agent_api_in_the_servers_row(
    clusters: MultiClusterSandbox, pool: asyncpg.Pool, fleet: list[FleetNode]
) -> None:
    inventory = PgInventory(pool)
    for node in fleet:
        base = Server(
            server_id=node.uid,
            validator=node.validator,
            name=node.name,
            ip_address=node.external_ip,
            gpu_count=node.gpu_count,
            hourly_cost=2.0,
            is_tee=node.tee,
        )
        await inventory.upsert_server(server_row(base, clusters))
    rows = await pool.fetch("SELECT name, kubeconfig, agent_api, is_tee FROM servers ORDER BY name")
    assert sorted(r["name"] for r in rows) == sorted(clusters.names)
    for row in rows:
        assert row["kubeconfig"] == clusters.kubeconfig_text(row["name"])
        member = clusters.members[row["name"]]
        # the base URL registration was given: here the sandbox agents' front, which answers
        assert row["agent_api"] == clusters.agent_front.agent_api(row["name"])
        async with aiohttp.ClientSession() as http, http.get(f"{row['agent_api']}/ping") as ping:
            assert await ping.json() == {"message": "pong"}
        # a client built from the row, with context = servers.name, reaches that server only
        api = await connect_api(yaml.safe_load(row["kubeconfig"]), context=row["name"])
        try:
            node = await client.CoreV1Api(api).read_node(row["name"])
            assert node.metadata.uid == member.node.uid
        finally:
            await api.close()


async def test_merged_kubeconfig_has_every_context_in_the_chutes_namespace(
    clusters: MultiClusterSandbox, tmp_path: object
) -> None:
    merged = clusters.merged_kubeconfig()
    assert merged["current-context"] == CONTROL_PLANE_NAME
    contexts = {c["name"]: c["context"] for c in merged["contexts"]}
    assert set(contexts) == {CONTROL_PLANE_NAME, *clusters.names}
    assert {c["namespace"] for c in contexts.values()} == {"chutes"}
    for name in clusters.names:
        api = await connect_api(merged, context=name)
        try:
            nodes = await client.CoreV1Api(api).list_node()
            assert [n.metadata.name for n in nodes.items] == [name]
        finally:
            await api.close()


async def test_stopped_api_refuses_connections_and_comes_back_on_the_same_url(
    clusters: MultiClusterSandbox, miner_api: dict[str, client.ApiClient]
) -> None:
    name = clusters.names[0]
    url = clusters.members[name].url
    await clusters.stop_api(name)
    with pytest.raises(ClientConnectorError):
        await client.CoreV1Api(miner_api[name]).list_node(_request_timeout=5)
    other = clusters.names[1]
    assert (await client.CoreV1Api(miner_api[other]).list_node()).items  # others unaffected
    await clusters.start_api(name)
    assert clusters.members[name].url == url
    assert (await client.CoreV1Api(miner_api[name]).list_node()).items


async def test_a_hung_api_outlasts_the_client_timeout_until_released(
    clusters: MultiClusterSandbox, miner_api: dict[str, client.ApiClient]
) -> None:
    name = clusters.names[1]
    core = client.CoreV1Api(miner_api[name])
    clusters.hang_api(name)
    with pytest.raises(TimeoutError):
        await core.list_node(_request_timeout=0.3)
    clusters.release_api(name)
    assert (await core.list_node(_request_timeout=5)).items


async def test_rotated_credentials_refuse_the_old_token(
    clusters: MultiClusterSandbox, miner_api: dict[str, client.ApiClient]
) -> None:
    name = clusters.names[2]
    old = miner_api[name]
    old_token = clusters.members[name].miner_token
    new_text = clusters.rotate_credentials(name)
    assert new_text == clusters.kubeconfig_text(name)
    assert old_token not in new_text
    with pytest.raises(ApiException) as refused:
        await client.CoreV1Api(old).list_node()
    assert refused.value.status == 401
    fresh = await connect_api(yaml.safe_load(new_text), context=name)
    try:
        assert (await client.CoreV1Api(fresh).list_node()).items
    finally:
        await fresh.close()
