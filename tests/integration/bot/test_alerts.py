"""Failure alerts end to end: a crashing pod -> one alert whose buttons work; ten crashes in a
minute -> one storm message with the failures in its thread."""

from __future__ import annotations

from datetime import timedelta

from bot.action_ids import (
    ALERT_BACKOFF_ACTION_ID,
    ALERT_RETRY_ACTION_ID,
    CONFIRM_ACTION_ID,
)
from bot.alerts import DeployFailure
from gepetto_core.errors import InsufficientGpusError
from gepetto_core.services.deployer import DeployRequest
from gepetto_sandbox.cluster import PodFault

from .conftest import ALERTS, VIEWER, World, buttons, eventually, text_of


def top_level(world: World) -> list[str]:
    return [
        ts
        for (ch, ts), m in world.slack.messages.items()
        if ch == ALERTS and not m.get("thread_ts")
    ]


def replies(world: World, thread_ts: str) -> list[str]:
    return [
        ts
        for (ch, ts), m in world.slack.messages.items()
        if ch == ALERTS and m.get("thread_ts") == thread_ts
    ]


async def test_crashing_pod_gives_one_alert_with_working_buttons(world: World) -> None:
    chute = world.launch_chute()
    node = world.server_for(chute)
    world.miner.cluster.script_fault(
        chute["chute_id"], PodFault("crash", exit_code=137, after_seconds=0.1)
    )
    deployed = await world.rt.deployer.deploy(DeployRequest(chute["chute_id"], node.uid))

    async def job_failed() -> bool:
        jobs = world.rt.cluster
        job = await jobs.get_chute_job(deployed.deployment.deployment_id)
        return job.status.failed > 0

    await eventually(job_failed)
    report = await world.rt.reconciler.run_once()
    await world.bot.alerts.on_reconcile(report)
    # the next pass sees nothing new: still one alert
    await world.bot.alerts.on_reconcile(await world.rt.reconciler.run_once())
    await world.settle()

    [ts] = top_level(world)
    alert = world.slack.messages[(ALERTS, ts)]
    assert "Deploy failed" in alert["text"] and "exit 137" in str(alert["blocks"])
    assert "container exited with code 137" in str(alert["blocks"])  # the last log lines
    record = await world.rt.state.get_alert(f"deploy-failed:{chute['chute_id']}:{node.uid}")
    assert record is not None and record.message_ts == ts and record.state == "open"
    by_id = {b["action_id"]: b["value"] for b in buttons_of(alert)}
    assert set(by_id) >= {ALERT_RETRY_ACTION_ID, ALERT_BACKOFF_ACTION_ID}

    # Retry shows the deploy plan with a Confirm button (the same deployer path as the CLI)
    _, rid = await world.click(ALERT_RETRY_ACTION_ID, by_id[ALERT_RETRY_ACTION_ID])
    plan = await world.answer(rid)
    assert any(b["action_id"] == CONFIRM_ACTION_ID for b in buttons(plan)), text_of(plan)

    # a viewer may not back off; an operator may, and the alert is edited in place
    _status, rid = await world.click(
        ALERT_BACKOFF_ACTION_ID, by_id[ALERT_BACKOFF_ACTION_ID], user=VIEWER
    )
    assert "not allowed" in text_of(await world.answer(rid))
    await world.click(ALERT_BACKOFF_ACTION_ID, by_id[ALERT_BACKOFF_ACTION_ID])
    await world.settle()
    edited = world.slack.messages[(ALERTS, ts)]
    assert "backing off" in str(edited["blocks"]) and not buttons_of(edited)
    assert top_level(world) == [ts]
    record = await world.rt.state.get_alert(record.alert_key)
    assert record is not None and record.state == "acknowledged"


def buttons_of(message: dict[str, object]) -> list[dict[str, str]]:
    blocks = message.get("blocks") or []
    assert isinstance(blocks, list)
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


async def test_ten_failures_in_a_minute_make_one_storm_thread(world: World) -> None:
    servers = await world.rt.inventory.list_servers()
    chutes = (await world.rt.inventory.list_chutes())[:10]
    for i, chute in enumerate(chutes):  # one crash every five seconds
        server = servers[i % len(servers)]
        await world.bot.alerts.deploy_failures(
            [
                DeployFailure(
                    chute_id=chute.chute_id,
                    server_id=server.server_id,
                    reason="job failed: Error, exit 137",
                    at=world.clock(),
                    chute_name=chute.name,
                    server_name=server.name,
                )
            ]
        )
        world.clock.advance(seconds=5)
    await world.settle()
    [storm_ts] = top_level(world)
    storm = world.slack.messages[(ALERTS, storm_ts)]
    assert "Failure storm: 10 failed deploys" in str(storm["blocks"]), storm
    assert "reason job failed: 10" in str(storm["blocks"])
    assert len(replies(world, storm_ts)) == 10
    # a repeat of one of them edits its reply; nothing new is posted
    posts = len(world.slack.calls_to("chat.postMessage"))
    chute, server = chutes[0], servers[0]
    await world.bot.alerts.deploy_failures(
        [
            DeployFailure(
                chute.chute_id, server.server_id, "job failed: Error, exit 1", world.clock()
            )
        ]
    )
    await world.settle()
    assert len(world.slack.calls_to("chat.postMessage")) == posts
    record = await world.rt.state.get_alert(f"deploy-failed:{chute.chute_id}:{server.server_id}")
    assert record is not None and record.occurrences == 2 and record.thread_ts == storm_ts
    assert timedelta(0) < world.clock.shift


async def test_ten_real_crashes_in_a_minute_make_one_storm_thread(world: World) -> None:
    """Ten pods that really crash, found by one reconcile pass: one storm, ten replies."""
    deployed: list[str] = []
    for chute in sorted(world.miner.validator.world.chutes.values(), key=lambda c: c["chute_id"]):
        if len(deployed) == 10:
            break
        if not world.launchable(chute) or chute["node_selector"]["gpu_count"] != 1:
            continue
        world.miner.validator.set_target(chute["chute_id"], 20)
        world.miner.cluster.script_fault(
            chute["chute_id"], PodFault("crash", exit_code=137, after_seconds=0.1)
        )
        for node in world.miner.fleet:
            if node.tee or node.gpu_type not in chute["node_selector"]["supported_gpus"]:
                continue
            try:
                result = await world.rt.deployer.deploy(DeployRequest(chute["chute_id"], node.uid))
            except InsufficientGpusError:
                continue
            deployed.append(result.deployment.deployment_id)
            if len(deployed) == 10:
                break
    assert len(deployed) == 10, "the catalog must offer ten 1-GPU crash candidates"

    async def all_failed() -> bool:
        jobs = {j.deployment_id: j for j in await world.rt.cluster.list_chute_jobs()}
        return all(jobs[d].status.failed > 0 for d in deployed if d in jobs)

    await eventually(all_failed)
    report = await world.rt.reconciler.run_once()
    assert report.plan.complete, report.plan.problems  # real crashes are not held back
    await world.bot.alerts.on_reconcile(report)
    await world.settle()
    [storm_ts] = top_level(world)
    storm = world.slack.messages[(ALERTS, storm_ts)]
    assert "Failure storm: 10 failed deploys" in str(storm["blocks"]), storm
    assert len(replies(world, storm_ts)) == 10


async def test_a_server_and_a_chute_reconcile_removed_are_summarized(world: World) -> None:
    """The recycle summary names whole servers and chutes a pass removed, with why."""
    node = world.miner.fleet[0]
    await world.rt.state.request_server_removal(node.uid, "the server was deleted (miner API)")
    chute = world.launch_chute()
    row = await world.rt.inventory.get_chute(chute["chute_id"])
    assert row is not None
    await world.rt.state.request_chute_removal(row.chute_id, "the validator deleted the chute")

    report = await world.rt.reconciler.run_once()
    await world.bot.alerts.on_reconcile(report)
    await world.settle()
    [ts] = top_level(world)
    card = str(world.slack.messages[(ALERTS, ts)]["blocks"])
    assert "Recycle removed 2 thing(s)" in card
    assert f"server {node.name} removed — the server was deleted (miner API)" in card
    assert f"chute {row.name} deleted — the validator deleted the chute" in card
    assert await world.rt.inventory.get_server(node.uid) is None
