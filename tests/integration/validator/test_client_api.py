"""The real client against the sandbox validator over real HTTP: every miner-used endpoint."""

from __future__ import annotations

import pytest

from gepetto_core.adapters.signing import HotkeySigner
from gepetto_core.adapters.validator import HttpValidatorApi
from gepetto_core.errors import (
    NoCapacityError,
    ValidatorAuthError,
    ValidatorNotFoundError,
)
from gepetto_core.models.validator import StreamStatus
from gepetto_sandbox.validator import SandboxValidator

from .conftest import make_room, pick_chute, server_for


async def test_chute_and_image_streams_carry_the_catalog(
    api: HttpValidatorApi, sandbox: SandboxValidator
) -> None:
    chutes = await api.stream_chutes()
    assert chutes.status is StreamStatus.ITEMS
    assert {c.chute_id for c in chutes.items} == set(sandbox.world.chutes)
    some = chutes.items[0]
    assert some.code == sandbox.world.chutes[some.chute_id]["code"]
    assert some.effective_compute_multiplier > 0
    images = await api.stream_images()
    assert {i.image_id for i in images.items} == set(sandbox.world.images)


async def test_instances_stream_says_no_items_when_we_have_none(api: HttpValidatorApi) -> None:
    result = await api.stream_instances()
    assert result.status is StreamStatus.EMPTY


async def test_nodes_stream_without_marker_is_no_information(api: HttpValidatorApi) -> None:
    result = await api.stream_nodes()
    assert result.status is StreamStatus.NO_INFORMATION


async def test_launch_flow_shows_up_in_every_view(
    api: HttpValidatorApi, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    chute = pick_chute(sandbox)
    gpus = server_for(sandbox, miner, chute)
    make_room(sandbox, chute["chute_id"])
    config = await api.launch_config(chute["chute_id"])
    instance_id = sandbox.bring_up(config.config_id, gpus, "10.1.0.5", 30100)

    mine = await api.stream_instances()
    assert [i.instance_id for i in mine.items] == [instance_id]
    assert mine.items[0].config_id == config.config_id
    assert mine.items[0].active and mine.items[0].verified
    nodes = await api.stream_nodes()
    assert {n.uuid for n in nodes.items} == set(gpus)
    active = await api.active_instances()
    assert instance_id in {a.instance_id for a in active}
    servers = await api.servers()
    assert [g.uuid for g in servers[0].gpus] == gpus

    assert await api.delete_instance(chute["chute_id"], instance_id) is True
    assert await api.delete_instance(chute["chute_id"], instance_id) is False
    assert (await api.stream_instances()).status is StreamStatus.EMPTY


async def test_launch_config_is_a_jwt_pointing_back_at_the_validator(
    api: HttpValidatorApi, sandbox: SandboxValidator
) -> None:
    import jwt

    chute = pick_chute(sandbox)
    make_room(sandbox, chute["chute_id"])
    config = await api.launch_config(chute["chute_id"])
    claims = jwt.decode(
        config.token, sandbox.world.jwt_secret, algorithms=["HS256"], issuer="chutes"
    )
    assert claims["sub"] == config.config_id
    assert claims["url"] == f"{sandbox.base_url}/instances/launch_config/{config.config_id}"


async def test_full_target_answers_423_as_no_capacity(
    api: HttpValidatorApi, sandbox: SandboxValidator
) -> None:
    chute = pick_chute(sandbox)
    total, active, _ = sandbox.world.counts(chute["chute_id"], None)
    assert active > 0, "the generated chute should have other miners' instances"
    sandbox.set_target(chute["chute_id"], total)
    with pytest.raises(NoCapacityError) as info:
        await api.launch_config(chute["chute_id"])
    assert info.value.status == 423
    assert "target capacity" in str(info.value)
    assert sandbox.world.launch_configs == {}


async def test_unknown_chute_is_not_found(api: HttpValidatorApi, sandbox: SandboxValidator) -> None:
    chute = pick_chute(sandbox)
    fetched = await api.get_chute(chute["chute_id"], chute["version"])
    assert fetched.version == chute["version"]
    with pytest.raises(ValidatorNotFoundError):
        await api.get_chute(chute["chute_id"], "not-the-version")
    with pytest.raises(ValidatorNotFoundError):
        await api.launch_config("no-such-chute")


async def test_unregistered_hotkey_is_refused(http: object, sandbox: SandboxValidator) -> None:
    import aiohttp

    assert isinstance(http, aiohttp.ClientSession)
    stranger = HttpValidatorApi(http, HotkeySigner("//Stranger"), sandbox.base_url, sandbox.hotkey)
    with pytest.raises(ValidatorAuthError) as info:
        await stranger.stream_chutes()
    assert "not registered on netuid 64" in str(info.value)


async def test_utilization_and_rolling_updates(
    api: HttpValidatorApi, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    chute = pick_chute(sandbox)
    chute_id = chute["chute_id"]
    total, _, _ = sandbox.world.counts(chute_id, None)
    sandbox.set_target(chute_id, total)
    rows = {u.chute_id: u for u in await api.utilization()}
    assert rows[chute_id].scalable is False
    sandbox.set_target(chute_id, total + 2)
    rows = {u.chute_id: u for u in await api.utilization()}
    assert rows[chute_id].scalable is True
    assert rows[chute_id].scale_allowance == 2

    new_version = sandbox.update_chute(chute_id)
    updates = await api.rolling_updates()
    assert [(u.chute_id, u.new_version) for u in updates] == [(chute_id, new_version)]
    rows = {u.chute_id: u for u in await api.utilization()}
    assert rows[chute_id].update_in_progress is True
    # the update's quota belongs to the miners that had instances: not to us
    sandbox.set_target(chute_id, total)
    with pytest.raises(NoCapacityError, match="rolling update"):
        await api.launch_config(chute_id)


async def test_jobs_stream_and_release(
    api: HttpValidatorApi, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    chute = pick_chute(sandbox)
    job = sandbox.create_job(chute["chute_id"], disk_gb=50)
    jobs = await api.stream_jobs()
    assert [j.job_id for j in jobs.items] == [job["job_id"]]
    gpus = server_for(sandbox, miner, chute)
    config = await api.launch_config(chute["chute_id"], job_id=job["job_id"])
    sandbox.claim(config.config_id, gpus, "10.1.0.5", 30200)
    assert (await api.stream_jobs()).status is StreamStatus.NO_INFORMATION
    await api.release_job(job["job_id"])
    assert sandbox.broadcasts[-1]["reason"] == "job_created"
    assert "disk_gb" not in sandbox.broadcasts[-1]["data"]
    assert [j.job_id for j in (await api.stream_jobs()).items] == [job["job_id"]]
    with pytest.raises(ValidatorNotFoundError):
        await api.release_job(job["job_id"])


async def test_metrics_stream(api: HttpValidatorApi, sandbox: SandboxValidator) -> None:
    metrics = await api.stream_metrics()
    assert {m.chute_id for m in metrics.items} == set(sandbox.world.metrics)
    assert all(m.total_invocations >= 0 for m in metrics.items)


async def test_legacy_announce_and_activate(
    api: HttpValidatorApi, sandbox: SandboxValidator, miner: HotkeySigner
) -> None:
    chute = pick_chute(sandbox, legacy=True)
    gpus = server_for(sandbox, miner, chute, host="10.1.0.9")
    make_room(sandbox, chute["chute_id"])
    instance = await api.announce_instance(chute["chute_id"], gpus, "10.1.0.9", 31000)
    assert instance.chute_id == chute["chute_id"] and not instance.active
    activated = await api.activate_instance(chute["chute_id"], instance.instance_id)
    assert activated.active and activated.verified
    launch_chute = pick_chute(sandbox)
    with pytest.raises(Exception, match="outdated"):
        await api.announce_instance(launch_chute["chute_id"], gpus, "10.1.0.9", 31001)


async def test_a_150k_character_chute_streams_through(
    api: HttpValidatorApi, sandbox: SandboxValidator
) -> None:
    chute = pick_chute(sandbox)
    chute["code"] = 'print("\\u00e9\\n")\n' * 9_000  # escapes grow the JSON line further
    result = await api.stream_chutes()
    by_id = {c.chute_id: c for c in result.items}
    assert by_id[chute["chute_id"]].code == chute["code"]
