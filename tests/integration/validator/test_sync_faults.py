"""The sync service against a misbehaving validator: the previous snapshot stays, the error is
reported, and a healthy fetch afterwards refreshes everything."""

from __future__ import annotations

import aiohttp
import pytest

from gepetto_core.adapters.signing import HotkeySigner
from gepetto_core.adapters.validator import HttpValidatorApi
from gepetto_core.services.sync import ListName, SyncService
from gepetto_sandbox.validator import Fault, SandboxValidator

from .conftest import make_room, pick_chute, server_for

# Timeouts the faults below must trip: a hang outlasts them by far, and they stay well above
# what a healthy request to the sandbox needs on a loaded machine.
HASTY_TIMEOUT, HASTY_READ_TIMEOUT = 3.0, 1.5
HANG = Fault(delay=10.0)


@pytest.fixture
def api(
    http: aiohttp.ClientSession, miner: HotkeySigner, sandbox: SandboxValidator
) -> HttpValidatorApi:
    return HttpValidatorApi(
        http,
        miner,
        sandbox.base_url,
        sandbox.hotkey,
        timeout=HASTY_TIMEOUT,
        read_timeout=HASTY_READ_TIMEOUT,
        backoff_base=0.01,
        backoff_cap=0.02,
    )


@pytest.fixture
async def synced(api: HttpValidatorApi) -> SyncService:
    service = SyncService([api])
    first = await service.sync_validator(api.validator_hotkey)
    assert first.errors() == {}
    assert first.chutes.items
    return service


@pytest.mark.parametrize(
    ("fault", "expected_error"),
    [
        (Fault(status=503), "HTTP 503"),
        (HANG, "timed out"),
        (Fault(truncate_after=5), "cut short"),
        (Fault(bad_line_after=5), "bad stream item"),
    ],
    ids=["5xx", "hang", "truncated", "bad-line"],
)
async def test_a_broken_chute_stream_keeps_the_previous_snapshot(
    synced: SyncService, sandbox: SandboxValidator, fault: Fault, expected_error: str
) -> None:
    before = synced.snapshot(sandbox.hotkey)
    sandbox.world.chutes.pop(next(iter(sandbox.world.chutes)))  # the validator changed...
    sandbox.inject_fault("chutes", fault)  # ...but we cannot see it
    after = await synced.sync_validator(sandbox.hotkey)
    assert after.chutes.items == before.chutes.items
    assert after.chutes.fetched_at == before.chutes.fetched_at
    assert after.chutes.last_error is not None
    assert expected_error in after.chutes.last_error
    assert set(after.errors()) == {ListName.CHUTES}
    assert (
        after.images.fetched_at is not None and after.images.fetched_at > before.images.fetched_at
    )

    sandbox.clear_faults()
    healed = await synced.sync_validator(sandbox.hotkey)
    assert healed.chutes.last_error is None
    assert set(healed.chutes.items) == set(sandbox.world.chutes)


async def test_json_list_failures_keep_previous_state(
    synced: SyncService, sandbox: SandboxValidator
) -> None:
    before = synced.snapshot(sandbox.hotkey)
    sandbox.inject_fault("utilization", Fault(status=500))
    sandbox.inject_fault("active_instances", HANG)
    after = await synced.sync_validator(sandbox.hotkey)
    assert after.utilization.items == before.utilization.items
    assert after.active_instances.items == before.active_instances.items
    assert set(after.errors()) == {ListName.UTILIZATION, ListName.ACTIVE_INSTANCES}


async def test_an_empty_stream_without_marker_keeps_what_we_had(
    synced: SyncService, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    chute = pick_chute(sandbox)
    gpus = server_for(sandbox, miner, chute)
    have = await synced.sync_validator(sandbox.hotkey)
    assert set(have.nodes.items) == set(gpus)
    sandbox.world.nodes.clear()  # /miner/nodes/ now streams nothing, and no NO_ITEMS
    after = await synced.sync_validator(sandbox.hotkey)
    assert set(after.nodes.items) == set(gpus)
    assert after.nodes.fetched_at == have.nodes.fetched_at
    assert after.nodes.last_error is None


async def test_no_items_empties_our_instances(
    synced: SyncService, sandbox: SandboxValidator, miner: HotkeySigner, api: HttpValidatorApi
) -> None:
    chute = pick_chute(sandbox)
    gpus = server_for(sandbox, miner, chute)
    make_room(sandbox, chute["chute_id"])
    config = await api.launch_config(chute["chute_id"])
    instance_id = sandbox.bring_up(config.config_id, gpus, "10.1.0.5", 30100)
    assert set((await synced.sync_validator(sandbox.hotkey)).instances.items) == {instance_id}
    sandbox.delete_instance(instance_id)
    assert dict((await synced.sync_validator(sandbox.hotkey)).instances.items) == {}


async def test_several_validators_sync_independently(
    http: aiohttp.ClientSession, miner: HotkeySigner, sandbox: SandboxValidator
) -> None:
    second = SandboxValidator(seed=9, miners=[miner.hotkey], validator_uri="//SecondValidator")
    second.load_generated(10, seed=9)
    await second.start()
    try:
        apis = [
            HttpValidatorApi(
                http, miner, sb.base_url, sb.hotkey, timeout=10, read_timeout=5, backoff_base=0.01
            )
            for sb in (sandbox, second)
        ]
        service = SyncService(apis)
        second.inject_fault("chutes", Fault(status=502))
        snapshots = await service.sync_all()
        assert len(snapshots[sandbox.hotkey].chutes.items) == 40
        assert snapshots[second.hotkey].chutes.last_error is not None
        assert not snapshots[second.hotkey].chutes.known
        assert len(snapshots[second.hotkey].images.items) == 10
    finally:
        await second.stop()
