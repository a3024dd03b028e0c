"""Redis relay intake against the real Redis at 127.0.0.1:6379 (a unique channel per test)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gepetto_core.adapters.events_redis import RedisEventSource, publish_event
from gepetto_core.models.events import EventReason, MinerEvent

from .conftest import Recorder

VALI = "5SandboxValidatorHotkey"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis(host="127.0.0.1", port=6379, client_name=f"gepetto-test-{uuid.uuid4().hex}")
    yield client
    await client.aclose()


@pytest.fixture
async def intake(redis: Redis) -> AsyncIterator[tuple[RedisEventSource, Recorder]]:
    recorder = Recorder()
    source = RedisEventSource(
        redis,
        recorder,
        channel=f"miner_events_test_{uuid.uuid4().hex}",
        backoff_base=0.05,
        backoff_cap=0.2,
        poll_interval=0.1,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    async with asyncio.timeout(60):  # a hang detector
        await source.ready.wait()
    yield source, recorder
    stop.set()
    async with asyncio.timeout(60):  # a hang detector
        await task


def _event(chute_id: str, reason: EventReason = EventReason.BOUNTY_CHANGE) -> MinerEvent:
    return MinerEvent(reason=reason, validator=VALI, data={"chute_id": chute_id, "bounty": 100})


async def test_relayed_events_arrive_in_order_with_their_validator(
    redis: Redis, intake: tuple[RedisEventSource, Recorder]
) -> None:
    source, recorder = intake
    for name in ("a", "b", "c"):
        assert await publish_event(redis, _event(name), source.channel) == 1
    events = await recorder.wait_for(3)
    assert [e.data["chute_id"] for e in events] == ["a", "b", "c"]
    assert all(e.validator == VALI and e.reason is EventReason.BOUNTY_CHANGE for e in events)


async def test_malformed_and_unknown_messages_are_skipped(
    redis: Redis, intake: tuple[RedisEventSource, Recorder]
) -> None:
    source, recorder = intake
    await redis.publish(source.channel, b"{not json")
    await redis.publish(source.channel, b'{"event_type":"mystery","event_data":{}}')
    await redis.publish(source.channel, b'{"event_type":"chute_deleted","event_data":[1]}')
    await publish_event(redis, _event("after"), source.channel)
    events = await recorder.wait_for(1)
    assert [e.data["chute_id"] for e in events] == ["after"]


async def test_a_failing_handler_does_not_stop_the_intake(
    redis: Redis, intake: tuple[RedisEventSource, Recorder]
) -> None:
    source, recorder = intake
    recorder.fail_on.add("boom")
    await publish_event(redis, _event("boom"), source.channel)
    await publish_event(redis, _event("fine"), source.channel)
    events = await recorder.wait_for(2)
    assert [e.data["chute_id"] for e in events] == ["boom", "fine"]


async def test_the_intake_comes_back_after_redis_drops_the_connection(
    redis: Redis, intake: tuple[RedisEventSource, Recorder]
) -> None:
    source, recorder = intake
    name = await redis.client_getname()
    clients = await redis.client_list(_type="pubsub")
    ours = [c["id"] for c in clients if c.get("name") == name]
    assert ours, "the intake's subscription should be visible"
    for client_id in ours:
        await redis.client_kill_filter(_id=client_id)
    async with asyncio.timeout(60):  # a hang detector
        while await publish_event(redis, _event("again"), source.channel) == 0:  # noqa: ASYNC110 (poll until resubscribed)
            await asyncio.sleep(0.05)
    events = await recorder.wait_for(1)
    assert events[0].data["chute_id"] == "again"


async def test_an_unreachable_redis_is_retried_until_stopped() -> None:
    recorder = Recorder()
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    source = RedisEventSource(dead, recorder, backoff_base=0.01, backoff_cap=0.02)
    # stop must not wait for the client library's own connection retries
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop, grace=0.1))
    await asyncio.sleep(0.3)
    assert not task.done()  # still trying, not crashed
    assert not source.ready.is_set()
    stop.set()
    async with asyncio.timeout(60):  # a hang detector
        await task
    assert task.exception() is None
    with contextlib.suppress(Exception):
        await dead.aclose()
