"""A deleted server's monitoring agent (multi-cluster layout), end to end: gepetto asks the
agent to stop over its real HTTP API, signed by the miner; when the agent cannot, gepetto
clears the cluster from the monitor's cache itself, as upstream's handler does; the agent
refuses anyone but the miner; an agent that does not answer is a clear error and costs the
removal nothing."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from gepetto_core.adapters.agent_api import HttpAgents
from gepetto_core.adapters.monitor_cache import parse_cluster_message
from gepetto_core.adapters.signing import HotkeySigner
from gepetto_core.errors import AgentError
from gepetto_core.models.events import EventReason, MinerEvent
from gepetto_sandbox.multicluster import cache

from .conftest import SEED, Miner

pytestmark = pytest.mark.parametrize("layout", ["multi-monitor"])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _cached_keys(m: Miner, name: str) -> list[str]:
    return sorted(await m.monitored.redis.keys(f"clusters:{name}:*"))


async def _delete_server(m: Miner, name: str) -> str:
    server = next(s for s in await m.rt.inventory.list_servers() if s.name == name)
    await m.rt.handlers(
        MinerEvent(
            reason=EventReason.SERVER_DELETED,
            validator=m.world.validator.hotkey,
            data={"server_id": server.server_id},
        )
    )
    assert await m.rt.inventory.get_server(server.server_id) is None
    return server.server_id


async def test_an_agent_that_lost_its_state_leaves_gepetto_to_clear_the_cache(miner: Miner) -> None:
    name = miner.world.fleet[0].name
    agent = miner.monitored.agents[name]
    assert await _cached_keys(miner, name)  # registered: health and resources
    agent.has_control_plane = False  # its persisted monitor URL is gone: it answers 409
    pubsub = miner.monitored.redis.pubsub()
    await pubsub.subscribe(cache.CLUSTERS_CHANNEL)
    await pubsub.get_message(timeout=1.0)  # the subscription's confirmation

    await _delete_server(miner, name)

    (stop,) = [r for r in miner.clusters.agent_front.requests if r.path == "/monitor/stop"]
    assert (stop.cluster, stop.status) == (name, 409)
    assert await _cached_keys(miner, name) == []
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
    assert message is not None
    change = parse_cluster_message(cache.CLUSTERS_CHANNEL, message["data"])
    assert change is not None and (change.cluster, change.kind) == (name, "DELETED")
    await pubsub.aclose()
    other = miner.world.fleet[1].name
    assert await _cached_keys(miner, other)  # only that cluster went


async def test_a_stop_not_signed_by_the_miner_is_refused_and_the_agent_keeps_running(
    miner: Miner,
) -> None:
    name = miner.world.fleet[0].name
    front = miner.clusters.agent_front
    api = front.agent_api(name)
    assert api is not None
    async with aiohttp.ClientSession() as http:
        stranger = HttpAgents(http, HotkeySigner("//Mallory"))
        with pytest.raises(AgentError, match="401"):
            await stranger.stop_monitoring(api)
        async with http.get(f"{api}/monitor/stop") as unsigned:
            assert unsigned.status == 401
        async with http.get(f"{api}/monitor/health") as health:
            assert await health.json() == {"status": "healthy", "cluster": name}
    assert miner.monitored.agents[name].state == "running"
    assert await _cached_keys(miner, name)
    # the miner's own signature stops it, and the monitor forgets the cluster
    async with aiohttp.ClientSession() as http:
        await HttpAgents(http, HotkeySigner(SEED)).stop_monitoring(api)
    assert miner.monitored.agents[name].state == "stopped"
    assert await _cached_keys(miner, name) == []


async def test_an_unreachable_agent_is_a_clear_error_and_the_server_is_removed_anyway(
    miner: Miner,
) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(AgentError, match=rf"agent {dead} unreachable"):
            await HttpAgents(http, HotkeySigner(SEED)).stop_monitoring(dead)

    name = miner.world.fleet[0].name
    server = next(s for s in await miner.rt.inventory.list_servers() if s.name == name)
    await miner.rt.inventory.upsert_server(server.model_copy(update={"agent_api": dead}))
    await _delete_server(miner, name)
    assert await _cached_keys(miner, name) == []  # gepetto cleared it


async def test_credentials_in_an_agent_url_stay_out_of_the_error(miner: Miner) -> None:
    dead = f"http://admin:hunter2@127.0.0.1:{_closed_port()}"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(AgentError) as caught:
            await HttpAgents(http, HotkeySigner(SEED)).stop_monitoring(dead)
    assert "hunter2" not in str(caught.value) and "***@127.0.0.1" in str(caught.value)
