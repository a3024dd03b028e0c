"""Faults for the multi-cluster must-show list: a cluster API that goes away and comes back, a
rotated credential, a cache that lost or lags an object, the monitor's Redis restarting empty,
and a cluster lost in the middle of a deploy."""

from __future__ import annotations

import json
from typing import Any

import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from redis.exceptions import ConnectionError

from gepetto_core.adapters.kube_connect import connect_api

from .conftest import Channels, World, eventually, job_body, service_body


async def _state(world: World, name: str) -> str | None:
    state: str | None = await world.redis.hget(f"clusters:{name}:health", "state")
    return state


async def _job_cached(world: World, name: str, job: str) -> dict[str, Any] | None:
    raw = await world.redis.hget(f"clusters:{name}:resources:job", f"chutes:{job}")
    return json.loads(raw) if raw else None


async def test_an_agent_whose_api_went_away_resyncs_when_it_returns(
    world: World, listen: Any
) -> None:
    name = world.names[0]
    agent = world.monitored.agents[name]
    channels: Channels = await listen("clusters:all:reconnect")
    await world.clusters.stop_api(name)
    await eventually(lambda: _is(agent.state, "degraded", agent))  # watchers gave up
    await world.clusters.start_api(name)
    await eventually(lambda: _is(agent.state, "running", agent))
    received = await channels.wait_for(lambda r: bool(r))
    assert [json.loads(m)["cluster"] for _, m in received] == [name]
    assert await _state(world, name) == "starting"
    assert await agent.heartbeat_once() == 200
    assert await _state(world, name) == "active"


async def _is(_: object, expected: str, agent: Any) -> bool:
    return bool(agent.state == expected)


async def test_rotating_the_miners_credential_leaves_the_agent_watching(
    world: World, miner_api: dict[str, client.ApiClient]
) -> None:
    name = world.names[1]
    new_kubeconfig = world.clusters.rotate_credentials(name)
    try:
        await client.CoreV1Api(miner_api[name]).create_namespaced_service(
            "chutes", service_body("chute-service-x")
        )
        raise AssertionError("the old token was accepted")
    except ApiException as e:
        assert e.status == 401
    api = await connect_api(yaml.safe_load(new_kubeconfig), context=name)
    try:
        await client.BatchV1Api(api).create_namespaced_job("chutes", job_body("chute-r", name))
    finally:
        await api.close()
    assert await eventually(lambda: _job_cached(world, name, "chute-r"))
    assert await world.monitored.agents[name].heartbeat_once() == 200


async def test_a_job_dropped_from_the_cache_or_served_stale(
    world: World, miner_api: dict[str, client.ApiClient], listen: Any
) -> None:
    name = world.names[2]
    batch = client.BatchV1Api(miner_api[name])
    await batch.create_namespaced_job("chutes", job_body("chute-s", name))

    agent = world.monitored.agents[name]
    seen: list[int] = []

    async def settled() -> Any:
        """The pod is ready, the cache has the live Job, and no event came for a while (so
        nothing races the faults below)."""
        seen.append(agent.events_forwarded)
        job = await batch.read_namespaced_job("chute-s", "chutes")
        cached = await _job_cached(world, name, "chute-s")
        ready = job.status is not None and (job.status.ready or 0) >= 1
        quiet = len(seen) >= 10 and len(set(seen[-10:])) == 1
        caught_up = (
            cached and cached["metadata"]["resourceVersion"] == job.metadata.resource_version
        )
        return job if ready and quiet and caught_up else None

    live = await eventually(settled)
    channels: Channels = await listen(patterns=("resources:*",))
    monitor = world.monitored.monitor

    await monitor.serve_stale(name, "job", "chutes", "chute-s", resource_version="1")
    cached = await _job_cached(world, name, "chute-s")
    assert cached is not None and cached["metadata"]["resourceVersion"] == "1"
    assert live.metadata.resource_version != "1"

    assert await monitor.drop_cached(name, "job", "chutes", "chute-s")
    assert await _job_cached(world, name, "chute-s") is None
    assert (await batch.read_namespaced_job("chute-s", "chutes")).metadata.name == "chute-s"
    assert [ch for ch, _ in await channels.drain() if ch == "resources:job"] == []  # silently

    # the official cure: mark the cluster unhealthy; the next heartbeat forces a resync
    await monitor.mark_unhealthy(name, "stale job")
    assert await world.monitored.agents[name].heartbeat_once() == 409
    fresh = await eventually(lambda: _job_cached(world, name, "chute-s"))
    assert fresh["metadata"]["resourceVersion"] != "1"
    assert "kind" not in fresh  # back from a snapshot


async def test_the_monitor_recovers_from_its_redis_restarting_empty(
    world: World, listen: Any
) -> None:
    world.server.restart()

    async def reconnected() -> bool:  # the test's own client's first command may fail
        try:
            return bool(await world.redis.ping())
        except ConnectionError:
            return False

    await eventually(reconnected)
    assert await world.redis.keys("*") == []
    channels: Channels = await listen("clusters:all")
    codes = await world.monitored.heartbeat_all()
    assert set(codes.values()) <= {404, 500}  # no health hash any more (or a dead connection)

    async def all_back() -> bool:
        states = [await _state(world, n) for n in world.names]
        return states == ["starting"] * len(world.names)

    await eventually(all_back)
    for name in world.names:
        assert await world.redis.hexists(f"clusters:{name}:resources:node", f"None:{name}")
    received = await channels.wait_for(lambda r: len(r) >= len(world.names))
    assert sorted(json.loads(m)["cluster"] for _, m in received) == sorted(world.names)
    assert {json.loads(m)["event_type"] for _, m in received} == {"ADDED"}  # a re-registration


async def test_a_cluster_lost_right_after_its_job_was_created(
    world: World, miner_api: dict[str, client.ApiClient]
) -> None:
    name = world.names[0]
    agent = world.monitored.agents[name]
    lost = world.clusters.lose_after(name, "POST", r"/namespaces/chutes/jobs$")
    batch = client.BatchV1Api(miner_api[name])
    created = await batch.create_namespaced_job("chutes", job_body("chute-lost", name))
    assert created.metadata.name == "chute-lost"  # the create itself succeeded
    await eventually(lost.wait)
    assert agent.state == "stopped"
    try:
        await batch.read_namespaced_job("chute-lost", "chutes", _request_timeout=5)
        raise AssertionError("the lost cluster still answers")
    except OSError:
        pass
    # no more heartbeats: after 2 × interval the monitor calls it unhealthy
    await world.monitored.heartbeat_all()  # only the two live agents answer
    world.monitor_clock.advance(61)
    world.agent_clock.advance(61)
    for other in world.names[1:]:
        assert await world.monitored.agents[other].heartbeat_once() == 200
    assert await world.monitored.monitor.check_health_once() == [name]
    assert await _state(world, name) == "unhealthy"
    assert await world.redis.hexists(f"clusters:{name}:resources:node", f"None:{name}")

    await world.clusters.recover_cluster(name)
    assert agent.state == "running"
    assert await _state(world, name) == "starting"
    job = await _job_cached(world, name, "chute-lost")
    assert job is not None and job["spec"]["template"]["spec"]["nodeName"] == name
