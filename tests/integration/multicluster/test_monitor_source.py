"""MonitorSource against the simulated chutes-monitor: its cache read back as what the member
clusters hold, the clusters it must not believe, Redis going away and coming back, and pods
awaited through pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio
from kubernetes_asyncio import client
from redis.asyncio import Redis
from redis.exceptions import ConnectionError

from gepetto_core.adapters.cluster_source import ClusterRead, ClusterSnapshot, ClusterUnknown
from gepetto_core.adapters.kube_views import (
    chute_job_view,
    legacy_deployment_view,
    node_view,
    pod_view,
    service_view,
)
from gepetto_core.adapters.monitor_cache import ClusterChange
from gepetto_core.adapters.monitor_source import MonitorSource
from gepetto_sandbox.multicluster import PrivateRedis
from gepetto_sandbox.multicluster.redis_server import free_port

from .conftest import SteppedClock, World, eventually, job_body

MakeSource = Callable[..., Awaitable[MonitorSource]]
SECRET = "s3cret-pa55word-XYZ"


@pytest_asyncio.fixture
async def make_source(private_redis: PrivateRedis) -> AsyncIterator[MakeSource]:
    made: list[tuple[MonitorSource, Redis]] = []

    async def make(
        clock: Callable[[], Any], *, url: str | None = None, decode: bool = False, **kw: Any
    ) -> MonitorSource:
        redis = Redis.from_url(url or private_redis.url(), decode_responses=decode)
        kw = {"timeout": 5.0, "backoff_base": 0.05, "backoff_cap": 0.2, **kw}
        source = MonitorSource(redis, namespace="chutes", clock=clock, **kw)
        made.append((source, redis))
        return source

    yield make
    for source, redis in made:
        await source.close()
        await redis.aclose()


async def subscribed(source: MonitorSource, at_least: int = 1) -> None:
    """Start the subscriber and wait for its confirmation from Redis."""
    await source.read([])

    async def check() -> bool:
        return source.subscriptions >= at_least

    await eventually(check)


def service_with_labels(name: str, deployment_id: str) -> dict[str, Any]:
    labels = {"chutes/deployment-id": deployment_id, "chutes/chute": "true"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "chutes", "labels": labels},
        "spec": {
            "type": "NodePort",
            "selector": {"chutes/deployment-id": deployment_id},
            "ports": [{"port": 8000, "targetPort": 8000, "protocol": "TCP"}],
        },
    }


async def deploy(api: client.ApiClient, node: str, deployment_id: str) -> None:
    await client.BatchV1Api(api).create_namespaced_job(
        "chutes", job_body(f"chute-{deployment_id}", node, deployment_id)
    )
    await client.CoreV1Api(api).create_namespaced_service(
        "chutes", service_with_labels(f"chute-service-{deployment_id}", deployment_id)
    )


async def live(api: client.ApiClient) -> dict[str, Any]:
    """What one member cluster holds, listed from its API as the direct path lists it."""
    core, batch, apps = client.CoreV1Api(api), client.BatchV1Api(api), client.AppsV1Api(api)
    plain = api.sanitize_for_serialization
    chute = "chutes/chute=true"
    pods = [pod_view(plain(p)) for p in (await core.list_namespaced_pod("chutes")).items]
    jobs, versions = [], {}
    for job in (await batch.list_namespaced_job("chutes", label_selector=chute)).items:
        deployment_id = job.metadata.labels["chutes/deployment-id"]
        mine = [p for p in pods if p.labels.get("chutes/deployment-id") == deployment_id]
        jobs.append(chute_job_view(plain(job), mine))
        versions[job.metadata.name] = job.metadata.resource_version
    services = await core.list_namespaced_service("chutes", label_selector=chute)
    legacy = await apps.list_namespaced_deployment("chutes", label_selector=chute)
    return {
        "jobs": _norm(jobs),
        "pods": _norm(pods),
        "services": _norm([service_view(plain(s)) for s in services.items]),
        "nodes": _norm([node_view(plain(n)) for n in (await core.list_node()).items]),
        "legacy": _norm([legacy_deployment_view(plain(d)) for d in legacy.items]),
        "job_versions": versions,
    }


def cached(snapshot: ClusterSnapshot) -> dict[str, Any]:
    return {
        "jobs": _norm(list(snapshot.jobs)),
        "pods": _norm(list(snapshot.pods)),
        "services": _norm(list(snapshot.services)),
        "nodes": _norm(list(snapshot.nodes)),
        "legacy": _norm(list(snapshot.legacy)),
        "job_versions": dict(snapshot.job_versions),
    }


def _norm(views: list[Any]) -> list[dict[str, Any]]:
    dumped = [v.model_dump(mode="json") for v in views]
    for d in dumped:
        if "pods" in d:
            d["pods"] = sorted(d["pods"], key=lambda p: p["name"])
    return sorted(dumped, key=lambda d: str(d["name"]))


def reasons(reads: dict[str, ClusterRead]) -> dict[str, str]:
    return {n: r.reason for n, r in reads.items() if isinstance(r, ClusterUnknown)}


def snapshot_of(reads: dict[str, ClusterRead], name: str) -> ClusterSnapshot:
    found = reads[name]
    assert isinstance(found, ClusterSnapshot), found
    return found


# -- reading --------------------------------------------------------------------------------
async def test_a_read_equals_what_the_member_clusters_hold(
    world: World, miner_api: dict[str, client.ApiClient], make_source: MakeSource
) -> None:
    first, second, third = world.names
    await deploy(miner_api[first], first, "d-a")
    await deploy(miner_api[first], first, "d-b")
    await deploy(miner_api[second], second, "d-c")
    await world.monitored.heartbeat_all()  # starting -> active
    source = await make_source(world.agent_clock)

    async def settled() -> dict[str, ClusterRead] | None:
        reads = await source.read(world.names)
        for name in world.names:
            found = reads[name]
            if not isinstance(found, ClusterSnapshot):
                return None
            if cached(found) != await live(miner_api[name]):
                return None
            if any(not job.ready for job in found.jobs):
                return None
        return reads

    reads = await eventually(settled, 30.0)
    one = snapshot_of(reads, first)
    assert sorted(j.deployment_id or "" for j in one.jobs) == ["d-a", "d-b"]
    assert all(len(j.pods) == 1 and j.pods[0].node_name == first for j in one.jobs)
    assert sorted(s.deployment_id or "" for s in one.services) == ["d-a", "d-b"]
    assert all(s.node_port(8000) for s in one.services)
    assert set(one.job_versions) == {"chute-d-a", "chute-d-b"}
    assert [(n.name, n.gpu_count) for n in one.nodes] == [(first, 8)]
    assert one.as_of == world.agent_clock()  # the last heartbeat
    assert [j.name for j in snapshot_of(reads, second).jobs] == ["chute-d-c"]
    assert snapshot_of(reads, third).jobs == [] and snapshot_of(reads, third).nodes
    assert (await source.read([third, third])).keys() == {third}


async def test_clusters_that_must_not_be_believed_are_unknown_with_the_reason(
    world: World, make_source: MakeSource
) -> None:
    first, second, third = world.names
    clock = SteppedClock(world.agent_clock())
    source = await make_source(clock, decode=True)
    # just registered: `starting`, and this source saw no ADDED (it was not listening yet)
    found = reasons(await source.read(world.names))
    assert set(found) == set(world.names)
    assert all("resyncing" in r and "starting" in r for r in found.values())

    await world.monitored.heartbeat_all()
    await world.monitored.monitor.mark_unhealthy(first, "stale resourceVersion of chute-x")
    await world.redis.hset(
        f"clusters:{second}:health", mapping={"state": "error", "error_message": "offline"}
    )
    found = reasons(await source.read([*world.names, "ghost"]))
    assert found == {
        first: "the monitor reports the cluster unhealthy: stale resourceVersion of chute-x",
        second: "the monitor reports the cluster error: offline",
        "ghost": "not registered with the monitor",
    }

    clock.advance(89)  # within the limit
    assert reasons(await source.read([third])) == {}
    clock.advance(2)  # a monitor that stopped writing: nobody marks anything unhealthy
    assert reasons(await source.read([third])) == {third: "monitor data 91 s old (limit 90 s)"}
    clock.advance(-91 - 200)  # a heartbeat from an agent whose clock runs far ahead
    assert "clock skew" in reasons(await source.read([third]))[third]


async def test_a_resyncing_cluster_is_unknown_until_the_monitor_announces_its_snapshot(
    world: World, miner_api: dict[str, client.ApiClient], make_source: MakeSource
) -> None:
    name = world.names[0]
    await deploy(miner_api[name], name, "d-r")
    await world.monitored.heartbeat_all()
    source = await make_source(world.agent_clock)
    changes: list[ClusterChange] = []
    source.add_cluster_listener(changes.append)
    await subscribed(source)

    async def job_cached() -> bool:
        found = (await source.read([name]))[name]
        return isinstance(found, ClusterSnapshot) and len(found.jobs) == 1

    await eventually(job_cached)
    # the window of a resync: health already `starting`, pods and jobs deleted, HSETs pending
    world.monitor_clock.advance(5)
    await world.redis.hset(
        f"clusters:{name}:health",
        mapping={"state": "starting", "last_heartbeat": world.monitor_clock().isoformat()},
    )
    await world.redis.delete(f"clusters:{name}:resources:job", f"clusters:{name}:resources:pod")
    assert "resyncing" in reasons(await source.read([name]))[name]
    assert not await source.wait_pods_gone(name, "d-r", 0.0)  # no pods seen, none believed

    # the real thing: the agent resyncs, the monitor publishes clusters:all:reconnect
    world.monitor_clock.advance(5)
    await world.monitored.monitor.mark_unhealthy(name, "force a resync")
    assert await world.monitored.agents[name].heartbeat_once() == 409
    await eventually(job_cached)
    assert await world.redis.hget(f"clusters:{name}:health", "state") == "starting"
    assert changes == [ClusterChange(name, "RECONNECT", world.monitor_clock())]


async def test_a_cluster_leaving_the_monitor_is_announced_and_then_unknown(
    world: World, make_source: MakeSource
) -> None:
    name = world.names[2]
    await world.monitored.heartbeat_all()
    source = await make_source(world.agent_clock)
    changes: list[ClusterChange] = []
    source.add_cluster_listener(lambda _: 1 / 0)  # a failing listener harms nobody else
    remove = source.add_cluster_listener(changes.append)
    await subscribed(source)
    assert not reasons(await source.read([name]))
    assert await world.monitored.agents[name].stop() == 200  # the server is being removed

    async def deleted() -> bool:
        return ClusterChange(name, "DELETED", world.monitor_clock()) in changes

    await eventually(deleted)
    assert reasons(await source.read([name])) == {name: "not registered with the monitor"}
    remove()
    assert await world.monitored.agents[name].start(register=True) == 200

    async def believed() -> bool:  # `starting`, and its ADDED seen by the subscriber
        return not reasons(await source.read([name]))

    await eventually(believed)
    assert changes == [ClusterChange(name, "DELETED", world.monitor_clock())]  # removed


async def test_an_unreadable_cached_object_makes_only_its_cluster_unknown(
    world: World, make_source: MakeSource
) -> None:
    first, second, third = world.names
    await world.monitored.heartbeat_all()
    source = await make_source(world.agent_clock)
    await world.redis.hset(f"clusters:{first}:resources:job", "chutes:chute-bad", "{not json")
    await world.redis.hset(f"clusters:{second}:resources:pod", "kube-system:x", "{not json")
    await world.redis.hset(f"clusters:{second}:resources:job", "chutes:chute-list", "[1, 2]")
    await world.redis.set(f"clusters:{third}:resources:service", "not a hash")
    found = reasons(await source.read(world.names))
    assert found.pop(third).startswith("the monitor cache answered an error: ResponseError: ")
    assert found == {
        first: "cached job chutes:chute-bad is not valid JSON",
        second: "cached job chutes:chute-list is not valid JSON",
    }  # the bad pod outside the namespace is never parsed
    await world.redis.hdel(f"clusters:{second}:resources:job", "chutes:chute-list")
    await world.redis.delete(f"clusters:{third}:resources:service")
    assert set(reasons(await source.read(world.names))) == {first}


async def test_a_healthy_cluster_whose_node_is_missing_from_the_cache_is_unknown(
    world: World, make_source: MakeSource
) -> None:
    name = world.names[0]
    await world.monitored.heartbeat_all()
    source = await make_source(world.agent_clock)
    await world.redis.hdel(f"clusters:{name}:resources:node", f"None:{name}")
    # absence of the node must never read as "this server is gone"
    assert reasons(await source.read(world.names)) == {
        name: "the monitor holds no node for the cluster"
    }


# -- Redis going away -----------------------------------------------------------------------
async def test_the_monitors_redis_restarting_reads_unknown_then_recovers(
    world: World, make_source: MakeSource
) -> None:
    await world.monitored.heartbeat_all()
    source = await make_source(world.agent_clock, timeout=2.0)
    changes: list[ClusterChange] = []
    source.add_cluster_listener(changes.append)
    await subscribed(source)
    assert not reasons(await source.read(world.names))

    world.server.stop()
    down = await source.read(world.names)
    assert set(reasons(down)) == set(world.names)
    assert all(r.startswith("monitor cache unreachable: ") for r in reasons(down).values())
    world.server.start()  # empty, as the chart's Redis without its volume

    async def resubscribed() -> bool:
        return source.reconnects >= 1

    await eventually(resubscribed)
    assert ClusterChange(None, "RESUBSCRIBED") in changes
    assert set(reasons(await source.read(world.names)).values()) == {
        "not registered with the monitor"
    }

    async def redis_back() -> bool:
        try:
            return bool(await world.redis.ping())
        except ConnectionError:
            return False

    await eventually(redis_back)
    await world.monitored.heartbeat_all()  # no health hash: every agent restarts, re-registers

    async def added() -> bool:
        names = {c.cluster for c in changes if c.kind == "ADDED"}
        return names == set(world.names)

    await eventually(added)
    # registered and announced: believed even before the next heartbeat
    assert not reasons(await source.read(world.names))
    assert {await world.redis.hget(f"clusters:{n}:health", "state") for n in world.names} == {
        "starting"
    }


async def test_a_password_in_the_redis_url_never_reaches_a_reason(
    world: World, make_source: MakeSource
) -> None:
    refused = await make_source(
        world.agent_clock, url=f"redis://:{SECRET}@127.0.0.1:{free_port()}/0", timeout=2.0
    )
    wrong_user = await make_source(
        world.agent_clock, url=f"redis://gepetto:{SECRET}@127.0.0.1:{world.server.port}/0"
    )
    for source in (refused, wrong_user):
        found = reasons(await source.read(world.names))
        assert set(found) == set(world.names)
        for reason in found.values():
            assert reason.startswith("monitor cache unreachable: ")
            assert SECRET not in reason and "gepetto:" not in reason
        assert not await source.wait_pods_gone(world.names[0], "d-1", 0.0)


async def test_a_subscriber_whose_redis_stops_answering_resubscribes(
    world: World, make_source: MakeSource
) -> None:
    source = await make_source(
        world.agent_clock, timeout=0.5, poll_seconds=0.05, keepalive_seconds=0.2
    )
    await subscribed(source)
    # connected but silent (a hung server, a half-open connection): no error ever arrives, so
    # only the unanswered keep-alive PING can tell
    await world.redis.execute_command("CLIENT", "PAUSE", "2000", "ALL")
    await subscribed(source, at_least=2)


# -- waiting for pods -----------------------------------------------------------------------
async def _pod_cached(world: World, name: str, deployment_id: str) -> bool:
    pods = await world.redis.hgetall(f"clusters:{name}:resources:pod")
    return any(
        json.loads(raw)["metadata"]["labels"].get("chutes/deployment-id") == deployment_id
        for raw in pods.values()
    )


async def test_wait_pods_gone_wakes_on_the_pods_deleted_event(
    world: World, miner_api: dict[str, client.ApiClient], make_source: MakeSource
) -> None:
    name = world.names[0]
    await world.monitored.heartbeat_all()
    # no periodic re-check within the wait: only a pod event can end it early
    source = await make_source(world.agent_clock, recheck_seconds=3600.0)
    await subscribed(source)
    assert await source.wait_pods_gone(name, "d-none", 0.0)  # nothing cached: true at once
    await deploy(miner_api[name], name, "d-w")
    await eventually(lambda: _pod_cached(world, name, "d-w"))

    messages = source.messages
    waiting = asyncio.create_task(source.wait_pods_gone(name, "d-w", 60.0))

    async def waiting_on_events() -> bool:  # it looked, found the pod, and now waits
        return source.pod_waits == 1 and not waiting.done()

    await eventually(waiting_on_events)
    await client.BatchV1Api(miner_api[name]).delete_namespaced_job(
        "chute-d-w", "chutes", propagation_policy="Background"
    )
    async with asyncio.timeout(30):
        assert await waiting
    assert not await _pod_cached(world, name, "d-w")
    assert source.messages > messages


async def test_wait_pods_gone_gives_up_or_rechecks_without_events(
    world: World, miner_api: dict[str, client.ApiClient], make_source: MakeSource
) -> None:
    name = world.names[1]
    await deploy(miner_api[name], name, "d-s")
    await world.monitored.heartbeat_all()
    source = await make_source(world.agent_clock, recheck_seconds=0.05)
    await eventually(lambda: _pod_cached(world, name, "d-s"))
    async with asyncio.timeout(10):  # a hang fails here
        assert not await source.wait_pods_gone(name, "d-s", 0.3)

    # the pod leaves the cache without any event (a missed one): the periodic look sees it
    pods = await world.redis.hgetall(f"clusters:{name}:resources:pod")
    waiting = asyncio.create_task(source.wait_pods_gone(name, "d-s", 60.0))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await world.redis.hdel(f"clusters:{name}:resources:pod", *pods)
    async with asyncio.timeout(30):
        assert await waiting


async def test_wait_pods_gone_ends_in_time_while_redis_is_down(
    world: World, make_source: MakeSource
) -> None:
    await world.monitored.heartbeat_all()
    source = await make_source(world.agent_clock, timeout=1.0, recheck_seconds=0.1)
    world.server.stop()
    try:
        async with asyncio.timeout(20):
            assert not await source.wait_pods_gone(world.names[0], "d-1", 0.5)
    finally:
        world.server.start()


async def test_close_returns_though_the_subscriber_swallowed_its_cancellation(
    private_redis: PrivateRedis,
) -> None:
    # redis-py can turn a cancellation landing inside a pub/sub read into nothing and go on
    # waiting on its connection; staged here by a read that swallows the first cancellation.
    if not private_redis.running:
        private_redis.start()
    redis = Redis.from_url(private_redis.url())
    release = asyncio.Event()
    swallowed = asyncio.Event()
    make_pubsub = redis.pubsub

    def pubsub(**kw: Any) -> Any:
        ps = make_pubsub(**kw)
        read = ps.get_message

        async def get_message(*args: Any, **kwargs: Any) -> Any:
            try:
                return await read(*args, **kwargs)
            except asyncio.CancelledError:
                if swallowed.is_set():
                    raise
                swallowed.set()
                while not release.is_set():
                    with contextlib.suppress(asyncio.CancelledError):
                        await release.wait()
                return None

        ps.get_message = get_message  # type: ignore[method-assign]
        return ps

    redis.pubsub = pubsub  # type: ignore[method-assign]
    source = MonitorSource(
        redis, namespace="chutes", timeout=0.5, poll_seconds=0.05, keepalive_seconds=600
    )
    try:
        await subscribed(source)
        [task] = [t for t in asyncio.all_tasks() if t.get_name() == "monitor-pubsub"]
        await asyncio.wait_for(source.close(), timeout=10)  # a hang guard, not a timing
        assert swallowed.is_set() and not task.done()  # the subscriber is stuck, close is not
    finally:
        release.set()
        await asyncio.sleep(0)
        stuck = [t for t in asyncio.all_tasks() if t.get_name() == "monitor-pubsub"]
        for t in stuck:
            t.cancel()
        if stuck:
            await asyncio.wait(stuck, timeout=10)
        await asyncio.wait_for(redis.aclose(), timeout=10)
