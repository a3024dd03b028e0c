"""End to end: `/gepetto scales` -> Deploy -> Confirm -> the Job exists and the card walks every
step to active; clicking again does nothing new."""

from __future__ import annotations

import json

from bot.action_ids import CONFIRM_ACTION_ID, DEPLOY_ACTION_ID, SHARE_ACTION_ID
from gepetto_sandbox.slack import check_message

from .conftest import OPS, World, buttons, eventually, text_of


async def test_scales_deploy_confirm_runs_once_to_active(world: World) -> None:
    node = world.server_for(world.launch_chute())
    status, ack, rid = await world.command(f"scales -s {node.name} --limit 200")
    assert status == 200 and "scales" in ack
    table = await world.answer(rid)
    assert table.ok, table.response
    assert check_message(table.args.get("text"), table.args["blocks"]).error is None
    assert any(b["action_id"] == SHARE_ACTION_ID for b in buttons(table))
    deploys = [b for b in buttons(table) if b["action_id"].startswith(DEPLOY_ACTION_ID)]
    assert deploys, json.dumps(table.args["blocks"])[:3000]
    # a button whose chute can launch here; the chute is named server-side only
    offer, chute = None, None
    for button in deploys:
        pending = await world.bot.ctx.pending.get(button["value"])
        assert pending is not None and "argv" in pending.arguments
        candidate = world.miner.validator.world.chutes[pending.arguments["argv"][2]]
        assert candidate["chute_id"] not in button["value"]
        if offer is None and world.launchable(candidate):
            offer, chute = pending, candidate
            world.miner.validator.set_target(candidate["chute_id"], 20)
    assert offer is not None and chute is not None, "a launchable chute is offered"

    status, rid = await world.click(DEPLOY_ACTION_ID, offer.action_id)
    assert status == 200
    plan = await world.answer(rid)
    confirm = [b for b in buttons(plan) if b["action_id"] == CONFIRM_ACTION_ID]
    assert confirm and confirm[0]["value"] == offer.action_id and "confirm" in confirm[0]
    assert "Deploy" in text_of(plan)

    status, rid = await world.click(CONFIRM_ACTION_ID, offer.action_id)
    assert status == 200
    card = await world.slack.wait_for_call(
        "chat.postMessage", lambda c: c.args.get("channel") == OPS and not c.args.get("thread_ts")
    )
    ts = card.response["ts"]

    async def finished() -> bool:
        done = await world.bot.ctx.pending.get(offer.action_id)
        return done is not None and done.status in ("done", "failed")

    await eventually(finished, 60)
    await world.settle()
    done = await world.bot.ctx.pending.get(offer.action_id)
    assert done is not None and done.status == "done", done
    final = world.slack.messages[(OPS, ts)]
    assert "✅" in final["text"] and "active" in str(final["blocks"])

    thread = [
        c.args["text"]
        for c in world.slack.calls_to("chat.postMessage")
        if c.args.get("thread_ts") == ts
    ]
    steps = [
        "claimed",
        "launch config",
        "service",
        "job",
        "pod running",
        "instance verified",
        "active",
    ]
    for step in steps:
        assert any(line.startswith(f"✅ {step}") for line in thread), (step, thread)

    rows = await world.rt.inventory.list_deployments()
    assert (
        len(rows) == 1 and rows[0].chute_id == chute["chute_id"] and rows[0].server_id == node.uid
    )
    jobs = world.miner.cluster.objects(
        "jobs", "chutes", f"chutes/deployment-id={rows[0].deployment_id}"
    )
    assert len(jobs) == 1

    # the same Confirm again (a double click, a retry, a replay): nothing new happens
    posts_before = len(world.slack.calls_to("chat.postMessage"))
    status, rid = await world.click(CONFIRM_ACTION_ID, offer.action_id)
    assert status == 200
    again = await world.answer(rid)
    assert "nothing new" in text_of(again)
    status, rid = await world.click(DEPLOY_ACTION_ID, offer.action_id)
    assert "already" in text_of(await world.answer(rid))
    await world.settle()
    assert len(world.slack.calls_to("chat.postMessage")) == posts_before
    assert len(await world.rt.inventory.list_deployments()) == 1
    assert len(world.miner.cluster.objects("jobs", "chutes")) == 1

    audit = await world.rt.state.list_audit(actor="U0OPERATOR")
    assert [(a.verb, a.allowed) for a in audit] == [("deploy", True)]
    assert audit[0].message_link  # the audit row links to the Slack card
