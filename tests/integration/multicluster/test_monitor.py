"""The chutes-monitor simulator's Redis cache and channels, asserted on raw Redis contents and
raw pub/sub messages against the official formats."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from kubernetes_asyncio import client

from gepetto_core.adapters.kube_connect import connect_api
from gepetto_sandbox.cluster.resources import BY_PATH
from gepetto_sandbox.multicluster import AgentTimings, MonitoredClusters, MultiClusterSandbox

from .conftest import (
    T0,
    TIMINGS,
    Channels,
    SteppedClock,
    World,
    eventually,
    job_body,
    service_body,
)

SERVICES = BY_PATH[("", "v1", "services")]
HEALTH_FIELDS = {"cluster_name", "state", "last_heartbeat", "error_message", "heartbeat_failures"}
OFFICIAL_TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%f%z"


async def test_registration_writes_the_snapshot_and_health_of_every_cluster(
    clusters: MultiClusterSandbox, redis: Any, private_redis: Any, listen: Any
) -> None:
    channels: Channels = await listen("clusters:all", patterns=("resources:*", "cluster:*"))
    monitored = MonitoredClusters(
        clusters, private_redis.url(), timings=TIMINGS, clock=lambda: T0, loops=False
    )
    await monitored.start()
    try:
        keys = set(await redis.keys("*"))
        expected = set()
        for name in clusters.names:
            expected |= {f"clusters:{name}:health", f"clusters:{name}:resources:node"}
        assert keys == expected  # nothing in `chutes` yet: no pod/job/service/deployment keys

        stamp = "2026-12-05T08:00:00.123456+00:00"
        for name in clusters.names:
            health = await redis.hgetall(f"clusters:{name}:health")
            assert health == {
                "cluster_name": name,
                "state": "starting",
                "last_heartbeat": stamp,
                "error_message": "",
                "heartbeat_failures": "0",
            }
            nodes = await redis.hgetall(f"clusters:{name}:resources:node")
            assert list(nodes) == [f"None:{name}"]
            # the value is json.dumps(sanitize_for_serialization(list item)): no kind
            api = await connect_api(clusters.members[name].agent_kubeconfig(), context=name)
            try:
                item = (await client.CoreV1Api(api).list_node()).items[0]
                item.kind, item.api_version = None, None
                assert nodes[f"None:{name}"] == json.dumps(api.sanitize_for_serialization(item))
            finally:
                await api.close()
            value = json.loads(nodes[f"None:{name}"])
            assert "kind" not in value and "apiVersion" not in value
            assert list(value) == ["metadata", "spec", "status"]
            assert value["metadata"]["creationTimestamp"].endswith("+00:00")

        received = await channels.wait_for(lambda r: len(r) >= 3)
        assert sorted(received) == sorted(
            (
                "clusters:all",
                f'{{"cluster": "{name}", "event_type": "ADDED", "timestamp": "{stamp}"}}',
            )
            for name in clusters.names
        )  # and no resource events for snapshot writes
        for _, data in received:
            datetime.strptime(json.loads(data)["timestamp"], OFFICIAL_TIMESTAMP)
    finally:
        await monitored.stop()


async def test_heartbeats_make_clusters_active_with_the_agents_timestamp(world: World) -> None:
    codes = await world.monitored.heartbeat_all()
    assert set(codes.values()) == {200}
    for name in world.names:
        health = await world.redis.hgetall(f"clusters:{name}:health")
        assert health["state"] == "active"
        assert health["last_heartbeat"] == world.agent_clock().isoformat()
        assert set(health) == HEALTH_FIELDS


async def test_watch_events_fill_the_cache_and_four_channels(
    world: World, listen: Any, miner_api: Any
) -> None:
    name, other = world.names[0], world.names[1]
    channels: Channels = await listen(patterns=("resources:*", "cluster:*"))
    batch = client.BatchV1Api(miner_api[name])
    await batch.create_namespaced_job("chutes", job_body("chute-1", name))

    async def pod_running() -> dict[str, Any] | None:
        pods = await world.redis.hgetall(f"clusters:{name}:resources:pod")
        for raw in pods.values():
            pod = json.loads(raw)
            if pod.get("status", {}).get("phase") == "Running":
                return pod
        return None

    pod = await eventually(pod_running)
    assert pod["kind"] == "Pod" and pod["apiVersion"] == "v1"  # written from a watch event
    assert pod["spec"]["nodeName"] == name
    job_raw = await world.redis.hget(f"clusters:{name}:resources:job", "chutes:chute-1")
    assert job_raw is not None
    job = json.loads(job_raw)
    assert list(job)[:2] == ["apiVersion", "kind"] and job["kind"] == "Job"
    live = await batch.read_namespaced_job("chute-1", "chutes")
    await eventually(
        lambda: _cached_rv(world, name, "job", "chutes:chute-1", live.metadata.resource_version)
    )
    assert not await world.redis.exists(f"clusters:{other}:resources:job")

    await channels.drain()
    job_events = [m for ch, m in channels.received if ch == "resources:job"]
    assert job_events, channels.received
    first = json.loads(job_events[0])
    assert list(first) == ["cluster", "event", "timestamp"]
    assert first["cluster"] == name
    assert first["event"]["type"] == "ADDED"
    assert first["event"]["object"]["metadata"]["name"] == "chute-1"
    assert first["timestamp"] == T0.isoformat()
    # the same message, byte for byte, on all four channels
    for channel in (f"cluster:{name}:resources", f"cluster:{name}:resources:job", "resources:all"):
        assert job_events[0] in [m for ch, m in channels.received if ch == channel]
    assert not [ch for ch, _ in channels.received if other in ch]

    await batch.delete_namespaced_job("chute-1", "chutes", propagation_policy="Background")

    async def all_gone() -> bool:
        jobs = await world.redis.hlen(f"clusters:{name}:resources:job")
        pods = await world.redis.hlen(f"clusters:{name}:resources:pod")
        return jobs == 0 and pods == 0

    await eventually(all_gone)
    await channels.drain()
    deleted = [json.loads(m) for ch, m in channels.received if ch == "resources:job"]
    assert deleted[-1]["event"]["type"] == "DELETED"


async def _cached_rv(world: World, cluster: str, kind: str, field: str, rv: str) -> bool:
    raw = await world.redis.hget(f"clusters:{cluster}:resources:{kind}", field)
    return raw is not None and json.loads(raw)["metadata"]["resourceVersion"] == rv


async def test_a_deleted_object_still_readable_is_terminating_until_gone(
    world: World, listen: Any
) -> None:
    name = world.names[0]
    core = world.clusters.cluster(name).core
    core.create(SERVICES, "chutes", service_body("chute-service-1"))
    field = "chutes:chute-service-1"
    key = f"clusters:{name}:resources:service"
    await eventually(lambda: world.redis.hexists(key, field))
    channels: Channels = await listen(f"cluster:{name}:resources:service")
    old_uid = core.get(SERVICES, "chutes", "chute-service-1")["metadata"]["uid"]
    # deleted and re-created before the agent re-reads it: still readable after DELETED
    core.delete(SERVICES, "chutes", "chute-service-1")
    core.create(SERVICES, "chutes", service_body("chute-service-1"))
    await channels.wait_for(lambda r: any('"TERMINATING"' in m for _, m in r))
    terminating = [m for m in channels.on(f"cluster:{name}:resources:service")]
    assert terminating[0]["event"]["type"] == "TERMINATING"
    assert terminating[0]["event"]["object"]["metadata"]["uid"] == old_uid
    assert await world.redis.hexists(key, field)  # TERMINATING is an HSET
    core.delete(SERVICES, "chutes", "chute-service-1")

    def old_deleted(received: list[tuple[str, str]]) -> bool:
        for _, data in received:
            event = json.loads(data)["event"]
            if event["type"] == "DELETED" and event["object"]["metadata"]["uid"] == old_uid:
                return True
        return False

    await channels.wait_for(old_deleted)
    await eventually(lambda: _not(world.redis.hexists(key, field)))


async def _not(value: Any) -> bool:
    return not await value


async def test_a_resync_replaces_non_node_hashes_keeps_nodes_and_publishes_reconnect(
    world: World, listen: Any
) -> None:
    name = world.names[1]
    await world.redis.hset(f"clusters:{name}:resources:pod", "chutes:ghost", "{}")
    await world.redis.hset(f"clusters:{name}:resources:node", "None:ghost-node", "{}")
    channels: Channels = await listen(
        "clusters:all", "clusters:all:reconnect", patterns=("resources:*", "cluster:*")
    )
    world.monitor_clock.advance(5)
    await world.monitored.monitor.mark_unhealthy(name, "stale resourceVersion")
    assert await world.monitored.agents[name].heartbeat_once() == 409  # forces the resync
    received = await channels.wait_for(lambda r: bool(r))
    stamp = world.monitor_clock().isoformat()
    assert received == [
        ("clusters:all:reconnect", f'{{"cluster": "{name}", "timestamp": "{stamp}"}}')
    ]  # and no resource events for the snapshot
    await eventually(lambda: _state(world, name, "starting"))
    assert not await world.redis.hexists(f"clusters:{name}:resources:pod", "chutes:ghost")
    nodes = await world.redis.hkeys(f"clusters:{name}:resources:node")
    assert sorted(nodes) == sorted([f"None:{name}", "None:ghost-node"])
    health = await world.redis.hgetall(f"clusters:{name}:health")
    assert health["last_heartbeat"] == stamp and health["error_message"] == ""
    assert await world.monitored.agents[name].heartbeat_once() == 200


async def _state(world: World, name: str, state: str) -> bool:
    return bool(await world.redis.hget(f"clusters:{name}:health", "state") == state)


async def test_the_health_checker_marks_a_silent_cluster_unhealthy_after_two_intervals(
    world: World,
) -> None:
    monitor = world.monitored.monitor
    await world.monitored.heartbeat_all()
    beat = world.agent_clock().isoformat()
    world.monitor_clock.advance(60)  # heartbeat 59 s old: within 2 × 30 s
    assert await monitor.check_health_once() == []
    world.monitor_clock.advance(2)  # 61 s
    quiet = world.names[0]
    world.agent_clock.advance(62)
    for name in world.names[1:]:
        assert await world.monitored.agents[name].heartbeat_once() == 200
    assert await monitor.check_health_once() == [quiet]
    health = await world.redis.hgetall(f"clusters:{quiet}:health")
    assert health["state"] == "unhealthy"
    assert health["last_heartbeat"] == beat  # kept
    assert health["error_message"] == (
        f"Cluster {quiet} heartbeat is stale: {datetime.fromisoformat(beat)} (timeout: 0:01:00)"
    )
    assert set(health) == HEALTH_FIELDS
    world.monitor_clock.advance(3600)
    assert quiet in await monitor.check_health_once()
    health = await world.redis.hgetall(f"clusters:{quiet}:health")
    assert health["state"] == "error"
    assert health["error_message"] == "Cluster offline for more than 1 hour."
    assert await world.redis.hexists(f"clusters:{quiet}:resources:node", f"None:{quiet}")


async def test_unregister_clears_everything_and_publishes_deleted(
    world: World, listen: Any
) -> None:
    name = world.names[2]
    channels: Channels = await listen("clusters:all")
    assert await world.monitored.agents[name].stop() == 200
    assert await world.redis.keys(f"clusters:{name}:*") == []
    received = await channels.wait_for(lambda r: bool(r))
    stamp = world.monitor_clock().isoformat()
    deleted = f'{{"cluster": "{name}", "event_type": "DELETED", "timestamp": "{stamp}"}}'
    assert received == [("clusters:all", deleted)]
    assert await world.monitored.agents[name].stop() == 409  # the agent forgot the monitor


async def test_the_reconciler_clears_unknown_clusters_and_restarts_silent_agents(
    clusters: MultiClusterSandbox, redis: Any, private_redis: Any
) -> None:
    known = set(clusters.names[:2])  # the third server has no row (with an agent_api)

    async def server_names() -> set[str]:
        return known

    clock = SteppedClock()
    monitored = MonitoredClusters(
        clusters,
        private_redis.url(),
        timings=TIMINGS,
        clock=clock,
        server_names=server_names,
        loops=False,
    )
    third = clusters.names[2]
    try:
        await monitored.start()
        raise AssertionError("an agent of a server missing from the database registered")
    except RuntimeError as e:
        assert third in str(e) and "404" in str(e)
    try:
        assert monitored.agents[third].state == "stopped"
        await redis.hset(f"clusters:{third}:health", "state", "active")  # an orphan entry
        first = clusters.names[0]
        await monitored.agents[first].kill()
        await monitored.monitor.mark_unhealthy(first, "test")
        await monitored.monitor.reconcile_once()
        assert not await redis.exists(f"clusters:{third}:health")
        assert monitored.agents[first].state == "running"  # asked to start, and it did
        assert await redis.hget(f"clusters:{first}:health", "state") == "starting"
        # at most once per reinitiate interval
        await monitored.agents[first].kill()
        await monitored.monitor.mark_unhealthy(first, "test")
        await monitored.monitor.reconcile_once()
        assert monitored.agents[first].state == "stopped"
        clock.advance(121)
        await monitored.monitor.reconcile_once()
        assert monitored.agents[first].state == "running"
    finally:
        await monitored.stop()


async def test_with_loops_the_agents_heartbeat_and_clusters_turn_active(
    clusters: MultiClusterSandbox, redis: Any, private_redis: Any
) -> None:
    timings = AgentTimings(**{**TIMINGS.__dict__, "heartbeat_interval": 0.05})
    # The monitor's clock stands still at T0, before any agent's (real) timestamp, so the
    # health checker running every 0.05 s can never find a heartbeat stale on a slow machine.
    monitored = MonitoredClusters(
        clusters, private_redis.url(), timings=timings, clock=SteppedClock(), loops=True
    )
    async with monitored:

        async def all_active() -> bool:
            states = [await redis.hget(f"clusters:{n}:health", "state") for n in clusters.names]
            return states == ["active"] * len(clusters.names)

        await eventually(all_active)
