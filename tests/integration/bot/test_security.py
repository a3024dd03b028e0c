"""Signatures, roles on every click, two-person approval (self-approval, expiry), audit."""

from __future__ import annotations

from bot.action_ids import APPROVE_ACTION_ID, CONFIRM_ACTION_ID, DEPLOY_ACTION_ID
from bot.approvals import OFFER_TTL
from gepetto_core.services.deployer import DeployRequest
from gepetto_sandbox.slack import forged, signed_slash_command, stale

from .conftest import ADMIN, ADMIN2, OPS, SIGNING_SECRET, VIEWER, World, buttons, text_of


async def test_forged_and_stale_signatures_are_refused(world: World) -> None:
    good = signed_slash_command(SIGNING_SECRET, "nodes")
    assert (await world.post(forged(good)))[0] == 401
    assert (await world.post(stale(SIGNING_SECRET, good, age_seconds=600)))[0] == 401
    await world.settle()
    assert world.slack.calls_to("response_url") == []
    assert world.bot.ctx.background.failures == 0


async def test_viewer_deploy_click_is_refused_and_audited(world: World) -> None:
    chute = world.launch_chute()
    node = world.server_for(chute)
    offer = await world.bot.ctx.pending.create(
        verb="deploy",
        arguments={"argv": ["deploy", "-c", chute["chute_id"], "-s", node.uid]},
        requested_by="U0OPERATOR",
        policy="confirm",
        ttl=OFFER_TTL,
    )
    for action_id in (DEPLOY_ACTION_ID, CONFIRM_ACTION_ID):
        status, rid = await world.click(action_id, offer.action_id, user=VIEWER)
        assert status == 200
        assert "not allowed" in text_of(await world.answer(rid))
    await world.settle()
    assert await world.rt.inventory.list_deployments() == []
    still = await world.bot.ctx.pending.get(offer.action_id)
    assert still is not None and still.status == "pending"
    audit = await world.rt.state.list_audit(actor=VIEWER)
    assert len(audit) == 2
    assert all(a.verb == "deploy" and not a.allowed and a.source == "slack" for a in audit)
    assert all("needs the operator role" in (a.result or "") for a in audit)
    assert audit[0].message_link and "/archives/C0GEPETTO/p" in audit[0].message_link


async def _approval_card(world: World, server_name: str) -> tuple[str, str]:
    """ADMIN asks to undeploy everything on a server; returns (request id, card ts)."""
    seen = {id(c) for c in world.slack.calls}
    status, _, rid = await world.command(f"undeploy --all-on {server_name}", user=ADMIN)
    assert status == 200
    plan = await world.answer(rid)
    [confirm] = [b for b in buttons(plan) if b["action_id"] == CONFIRM_ACTION_ID]
    assert confirm["text"]["text"] == "Request approval"
    status, _ = await world.click(CONFIRM_ACTION_ID, confirm["value"], user=ADMIN)
    card = await world.slack.wait_for_call(
        "chat.postMessage",
        lambda c: (
            id(c) not in seen
            and c.args.get("channel") == OPS
            and "approval" in str(c.args.get("text"))
        ),
    )
    [approve] = [b for b in buttons(card) if b["action_id"] == APPROVE_ACTION_ID]
    await world.settle()
    return approve["value"], card.response["ts"]


async def test_two_person_approval_self_expired_and_approved(world: World) -> None:
    chute = world.launch_chute()
    node = world.server_for(chute)
    await world.rt.deployer.deploy(DeployRequest(chute["chute_id"], node.uid))

    # the requester cannot approve their own request
    request_id, ts = await _approval_card(world, node.name)
    _, rid = await world.click(APPROVE_ACTION_ID, request_id, user=ADMIN, message_ts=ts)
    assert "cannot approve your own request" in text_of(await world.answer(rid))
    await world.settle()
    assert len(await world.rt.inventory.list_deployments()) == 1
    denied = [a for a in await world.rt.state.list_audit(actor=ADMIN) if not a.allowed]
    assert denied and "own request" in (denied[0].result or "")

    # an expired request fails for a second admin too, and the card says so
    world.clock.advance(minutes=16)
    _, rid = await world.click(APPROVE_ACTION_ID, request_id, user=ADMIN2, message_ts=ts)
    assert "expired" in text_of(await world.answer(rid))
    await world.settle()
    request = await world.bot.ctx.pending.get(request_id)
    assert request is not None and request.status == "expired"
    assert "expired" in str(world.slack.messages[(OPS, ts)]["blocks"])
    assert len(await world.rt.inventory.list_deployments()) == 1
    assert [a for a in await world.rt.state.list_audit(actor=ADMIN2) if not a.allowed]

    # a fresh request, approved by a second admin, runs once
    request_id, ts = await _approval_card(world, node.name)
    await world.click(APPROVE_ACTION_ID, request_id, user=ADMIN2, message_ts=ts)
    await world.settle()
    assert await world.rt.inventory.list_deployments() == []
    done = await world.bot.ctx.pending.get(request_id)
    assert done is not None and done.status == "done"
    assert [e["by"] for e in done.approvals] == [ADMIN2]
    [applied] = [a for a in await world.rt.state.list_audit(actor=ADMIN) if a.allowed]
    assert applied.verb == "undeploy --all-on" and applied.approvals == [ADMIN2]
    _status, rid = await world.click(APPROVE_ACTION_ID, request_id, user=ADMIN2, message_ts=ts)
    assert "already" in text_of(await world.answer(rid))
