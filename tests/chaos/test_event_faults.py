"""The Redis relay misbehaves: our subscriber is disconnected (CLIENT KILL), events arrive twice
and out of order. Each event's effect happens once; nothing healthy goes; the intake keeps
running and reconnects."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gepetto_core.adapters.events_redis import RedisEventSource, publish_event
from gepetto_core.models.events import EventReason, MinerEvent

from .conftest import ChaosTally
from .invariants import check_invariants
from .world import (
    MINER,
    SAFETY_NET_SECONDS,
    ChaosWorld,
    chaos_world,
    eventually,
    healthy_fleet,
    runtime_of,
)

pytestmark = pytest.mark.chaos


@pytest.fixture
async def world(fresh_db: str, tmp_path: Path) -> AsyncIterator[ChaosWorld]:
    async with chaos_world(fresh_db, tmp_path, seed=3, nodes=3, chutes=40) as w:
        w.open_targets(w.launchable())
        yield w


async def kill_client(admin: Redis, name: str) -> int:
    """CLIENT KILL every connection with this client name (only ours: the name is unique)."""
    killed = 0
    for client in await admin.client_list():
        if client.get("name") == name:
            await admin.client_kill_filter(_id=client["id"])
            killed += 1
    return killed


async def test_disconnects_duplicates_and_out_of_order_events(
    world: ChaosWorld, tally: ChaosTally
) -> None:
    name = f"gepetto-chaos-{uuid.uuid4().hex}"
    channel = f"miner_events_chaos_{uuid.uuid4().hex}"
    redis = Redis(host="127.0.0.1", port=6379, client_name=name)
    admin = Redis(host="127.0.0.1", port=6379)
    hotkey = world.sandbox.validator.hotkey
    async with runtime_of(world) as rt:
        handled: list[MinerEvent] = []

        async def counting(event: MinerEvent) -> None:
            try:
                await rt.handlers(event)
            finally:
                handled.append(event)

        source = RedisEventSource(redis, counting, channel=channel, backoff_base=0.05)
        stop = asyncio.Event()
        intake = asyncio.create_task(source.run(stop))
        try:
            await asyncio.wait_for(source.ready.wait(), SAFETY_NET_SECONDS)
            [keep, doomed] = await healthy_fleet(rt, 2, world)

            async def send(*events: MinerEvent) -> None:
                target = len(handled) + len(events)
                for event in events:
                    assert await publish_event(redis, event, channel) == 1
                await eventually(lambda: _at_least(handled, target))

            # a job: created, then the same event again once the job runs (a redelivery)
            request = await _job_chute(world, rt)
            job = world.sandbox.validator.create_job(request)
            created = MinerEvent(
                reason=EventReason.JOB_CREATED,
                validator=hotkey,
                data={"job_id": job["job_id"], "chute_id": request, "disk_gb": 10},
            )
            await send(created)
            [running] = await rt.inventory.find_deployments(job_id=job["job_id"])
            await eventually(lambda: _job_taken(world, job["job_id"]))

            # the subscriber is cut off; it reconnects and the duplicate arrives
            tally.fault("redis: CLIENT KILL of our subscriber", await kill_client(admin, name))
            # (redis-py resubscribes by itself, or the intake reconnects: either way, one
            # subscriber again, and the next event is delivered)
            await eventually(lambda: _subscribed(admin, channel))
            await send(created)
            tally.fault("redis: duplicated job_created")
            jobs = await rt.inventory.find_deployments(job_id=job["job_id"])
            tally.expect(
                [d.deployment_id for d in jobs] == [running.deployment_id],
                f"a duplicated job_created deployed again: {jobs}",
            )
            tally.expect(
                world.sandbox.validator.world.jobs[job["job_id"]]["miner_hotkey"] == MINER,
                "a duplicated job_created released the job we are running",
            )

            # the validator deletes an instance: deleted twice, then a stale activation
            row = await rt.inventory.get_deployment(doomed)
            assert row is not None and row.instance_id and row.config_id
            world.sandbox.validator.delete_instance(row.instance_id)
            deleted = MinerEvent(
                reason=EventReason.INSTANCE_DELETED,
                validator=hotkey,
                data={"instance_id": row.instance_id, "chute_id": row.chute_id},
            )
            activated = MinerEvent(
                reason=EventReason.INSTANCE_ACTIVATED,
                validator=hotkey,
                data={
                    "instance_id": row.instance_id,
                    "config_id": row.config_id,
                    "chute_id": row.chute_id,
                    "miner_hotkey": MINER,
                },
            )
            await send(deleted, deleted, activated)
            tally.fault("redis: duplicated and out-of-order instance events", 3)
            tally.expect(
                await rt.inventory.get_deployment(doomed) is None,
                "a stale activation brought back a deleted deployment",
            )
            rows = {d.deployment_id for d in await rt.inventory.list_deployments()}
            tally.expect(keep in rows, "an unrelated deployment went with a deleted instance")
            tally.expect(not intake.done(), "the intake stopped")
            await rt.reconciler.run_once()
            await check_invariants(tally, world, rt, {keep, running.deployment_id}, "events")
            tally.run("redis: disconnect, duplicates, out of order")
        finally:
            stop.set()
            await intake
            await redis.aclose()
            await admin.aclose()


async def _at_least(handled: list[MinerEvent], n: int) -> bool:
    return len(handled) >= n


async def _subscribed(admin: Redis, channel: str) -> bool:
    [(_, subscribers)] = await admin.pubsub_numsub(channel)
    return bool(subscribers == 1)


async def _job_taken(world: ChaosWorld, job_id: str) -> bool:
    return bool(world.sandbox.validator.world.jobs[job_id]["miner_hotkey"] == MINER)


async def _job_chute(world: ChaosWorld, rt: object) -> str:
    """A chute with room on a free server for one more instance."""
    from .world import free_pair

    request = await free_pair(rt, world=world)  # type: ignore[arg-type]
    assert request is not None
    return request.chute_id
