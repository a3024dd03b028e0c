"""Direct socket.io intake against the sandbox validator's feed over a real WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gepetto_core.adapters.events_socketio import SocketIoEventSource
from gepetto_core.adapters.signing import HotkeySigner
from gepetto_core.adapters.validator import HttpValidatorApi
from gepetto_core.models.events import EventReason
from gepetto_sandbox.validator import SandboxValidator

from .conftest import Recorder, make_room, pick_chute, server_for


def _source(
    sandbox: SandboxValidator, signer: HotkeySigner, recorder: Recorder
) -> SocketIoEventSource:
    return SocketIoEventSource(
        sandbox.base_url,
        signer,
        sandbox.hotkey,
        recorder,
        backoff_base=0.05,
        backoff_cap=0.2,
        connect_timeout=5.0,
    )


@pytest.fixture
async def feed(
    sandbox: SandboxValidator, miner: HotkeySigner
) -> AsyncIterator[tuple[SocketIoEventSource, Recorder]]:
    recorder = Recorder()
    source = _source(sandbox, miner, recorder)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    async with asyncio.timeout(60):  # a hang detector
        await source.ready.wait()
        await sandbox.feed.wait_authenticated(miner.hotkey)
    yield source, recorder
    stop.set()
    async with asyncio.timeout(60):  # a hang detector
        await task


async def test_instance_lifecycle_events_reach_the_owner_in_order(
    feed: tuple[SocketIoEventSource, Recorder],
    sandbox: SandboxValidator,
    miner: HotkeySigner,
    api: HttpValidatorApi,
) -> None:
    _, recorder = feed
    chute = pick_chute(sandbox)
    gpus = server_for(sandbox, miner, chute)
    make_room(sandbox, chute["chute_id"])
    config = await api.launch_config(chute["chute_id"])
    instance_id = sandbox.bring_up(config.config_id, gpus, "10.1.0.5", 30100)
    events = await recorder.wait_for(3)
    assert [e.reason for e in events] == [
        EventReason.INSTANCE_CREATED,
        EventReason.INSTANCE_VERIFIED,
        EventReason.INSTANCE_ACTIVATED,
    ]
    assert all(e.validator == sandbox.hotkey for e in events)
    assert all(e.data["instance_id"] == instance_id for e in events)
    assert events[0].data["config_id"] == config.config_id
    assert events[0].data["validator"] == sandbox.hotkey


async def test_events_for_other_miners_and_unknown_reasons_are_not_delivered(
    feed: tuple[SocketIoEventSource, Recorder], sandbox: SandboxValidator
) -> None:
    _, recorder = feed
    sandbox.broadcast("instance_verified", {"instance_id": "x"}, recipients=["5SomeoneElse"])
    sandbox.broadcast("instance_hot", {"instance_id": "x"})
    sandbox.broadcast("server_deleted", {"server_id": "s"})
    sandbox.broadcast("chute_deleted", {"chute_id": "c", "version": "v"})
    events = await recorder.wait_for(1)
    assert [e.reason for e in events] == [EventReason.CHUTE_DELETED]


async def test_malformed_broadcasts_and_failing_handlers_do_not_stop_the_feed(
    feed: tuple[SocketIoEventSource, Recorder], sandbox: SandboxValidator
) -> None:
    source, recorder = feed
    recorder.fail_on.add("boom")
    await sandbox.emit_raw("not an object")
    await sandbox.emit_raw({"reason": "chute_created", "data": ["wrong"]})
    sandbox.broadcast("bounty_change", {"chute_id": "boom", "bounty": 100})
    sandbox.broadcast("bounty_change", {"chute_id": "fine", "bounty": 103})
    events = await recorder.wait_for(2)
    assert [e.data["chute_id"] for e in events] == ["boom", "fine"]
    assert source.ready.is_set()


async def test_the_feed_reconnects_after_the_server_drops_it(
    feed: tuple[SocketIoEventSource, Recorder], sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    source, recorder = feed
    assert source.connections == 1
    await sandbox.drop_sockets()
    async with asyncio.timeout(60):  # a hang detector
        while source.connections < 2 or not source.ready.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await sandbox.feed.wait_authenticated(miner.hotkey)
    sandbox.broadcast("image_created", {"image_id": "img"})
    events = await recorder.wait_for(1)
    assert events[0].reason is EventReason.IMAGE_CREATED


async def test_an_unregistered_hotkey_is_refused_and_keeps_retrying(
    sandbox: SandboxValidator,
) -> None:
    recorder = Recorder()
    source = _source(sandbox, HotkeySigner("//NotOnTheMetagraph"), recorder)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    async with asyncio.timeout(60):  # a hang detector
        while source.last_error is None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert "Hotkey is not registered on netuid 64" in source.last_error
    assert not source.ready.is_set()
    assert not task.done()
    stop.set()
    async with asyncio.timeout(60):  # a hang detector
        await task
    assert source.connections == 0
