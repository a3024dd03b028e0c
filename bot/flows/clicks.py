"""Button clicks after the ack. Every click re-checks who is clicking (``bot.authz``) and the
state of the pending action behind the button; nothing in the button value is trusted."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.approvals import APPROVAL_TTL, judge_approval, judge_execute
from bot.bot_context import BotContext
from bot.cards import build_approval_card, build_final_card, build_plan_card, notice, result_message
from bot.flows.common import audit_denied, load_view
from bot.flows.execution import context_lines, plan_title, run_confirmed
from bot.render import SlackMessage, parse_page_value
from gepetto_core.commands import VERBS, Caller, VerbSpec, parse, spec_for
from gepetto_core.errors import GepettoError
from gepetto_core.models.state import PendingAction
from gepetto_core.views import PlanView, dump_result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Click:
    """The parts of a ``block_actions`` payload the flows use."""

    action_id: str
    value: str
    user: str
    channel: str
    message_ts: str | None
    response_url: str

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Click:
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
        return cls(
            action_id=str(action.get("action_id", "")),
            value=str(action.get("value", "")),
            user=str((body.get("user") or {}).get("id", "")),
            channel=str(channel),
            message_ts=container.get("message_ts"),
            response_url=str(body.get("response_url") or ""),
        )


async def _tell(bot: BotContext, click: Click, message: SlackMessage) -> None:
    """A private answer to the clicker (never replaces the message they clicked)."""
    if not await bot.outbox.respond(click.response_url, message):
        await bot.outbox.ephemeral(click.channel, click.user, message)


def _spec(action: PendingAction) -> VerbSpec:
    argv = action.arguments.get("argv")
    if argv:
        return spec_for(parse(argv))
    return VERBS["backoff"].form("clear")  # acknowledging an alert is like clearing back-off


async def _load_authorized(bot: BotContext, click: Click) -> tuple[PendingAction, Caller] | None:
    """The pending action behind the button, if the clicker may act on it (else answered)."""
    action = await bot.pending.get(click.value)
    if action is None or action.verb == "view":
        await _tell(
            bot, click, notice("this button is not known (or too old); run it again", "warning")
        )
        return None
    caller = await bot.authz.caller(click.user, click.channel)
    spec = _spec(action)
    decision = bot.authz.check(caller, spec)
    if not decision.allowed:
        link = await bot.permalink(click.channel, click.message_ts) if click.message_ts else None
        await audit_denied(
            bot,
            caller,
            spec.key,
            {**action.arguments, "action_id": action.action_id, "click": click.action_id},
            decision.reason,
            link,
        )
        await _tell(bot, click, notice(f"not allowed: {decision.reason}", "error"))
        return None
    return action, caller


# -- Deploy / Retry / Undeploy: show the plan ------------------------------------------------


async def show_plan(bot: BotContext, click: Click) -> None:
    loaded = await _load_authorized(bot, click)
    if loaded is None:
        return
    action, caller = loaded
    refusal = judge_execute(action, bot.clock())
    if refusal:
        await _tell(bot, click, notice(refusal, "info"))
        return
    try:
        plan = await bot.execute(action.arguments["argv"], caller, bot.runtime)
    except GepettoError as e:
        await _tell(bot, click, notice(f"cannot do this now: {e}", "warning"))
        return
    assert isinstance(plan, PlanView)
    card = build_plan_card(plan, action.action_id, policy=action.policy, requested_by=click.user)
    await _tell(bot, click, card)


# -- Confirm / Cancel -----------------------------------------------------------------------


def plan_drift(old: dict[str, Any] | None, new: PlanView) -> list[str]:
    """What changed between the plan shown and the plan now (pure). Empty: still the same."""
    if not old or old.get("kind") != "plan":
        return []
    before = old.get("facts") or {}
    changed = []
    for key in ("chute_id", "server_id", "gpu", "gpu_count", "version", "deployments"):
        if key in before and key in new.facts and before[key] != new.facts[key]:
            changed.append(f"{key}: {before[key]} → {new.facts[key]}")
    return changed


async def confirm(bot: BotContext, click: Click) -> None:
    loaded = await _load_authorized(bot, click)
    if loaded is None:
        return
    action, caller = loaded
    refusal = judge_execute(action, bot.clock())
    if refusal:
        await _tell(bot, click, notice(f"nothing new: {refusal}", "info"))
        return
    try:  # re-check against current state: a stale plan is refused with the reason
        plan = await bot.execute(action.arguments["argv"], caller, bot.runtime)
    except GepettoError as e:
        await _tell(bot, click, notice(f"the plan is stale and was not run: {e}", "warning"))
        return
    assert isinstance(plan, PlanView)
    drift = plan_drift(action.plan, plan)
    if drift:
        await _tell(
            bot,
            click,
            notice("the plan changed since it was shown: " + "; ".join(drift), "warning"),
        )
        return
    channel = str(action.arguments.get("channel") or click.channel)
    if action.policy == "approval":
        await _request_approval(bot, click, action, plan, channel)
        return
    started = await bot.pending.move(action, "executing", by=click.user, decision="confirmed")
    if started is None:
        fresh = await bot.pending.get(action.action_id)
        await _tell(
            bot,
            click,
            notice(
                "nothing new: "
                + ((judge_execute(fresh, bot.clock()) if fresh else None) or "gone"),
                "info",
            ),
        )
        return
    await bot.outbox.respond(
        click.response_url,
        notice(f"▶️ running in <#{channel}>: {plan.title}"),
        replace_original=True,
    )
    lines = context_lines(action.requested_by, confirmed_by=click.user)
    await run_confirmed(bot, started, caller, channel=channel, lines=lines)


async def _request_approval(
    bot: BotContext, click: Click, offer: PendingAction, plan: PlanView, channel: str
) -> None:
    taken = await bot.pending.move(offer, "cancelled", by=click.user, decision="approval requested")
    if taken is None:
        await _tell(bot, click, notice("nothing new: approval was already requested", "info"))
        return
    request = await bot.pending.create(
        verb=offer.verb,
        arguments={**offer.arguments, "offer_id": offer.action_id, "channel": channel},
        plan=dump_result(plan),
        requested_by=click.user,
        policy="approval",
        ttl=APPROVAL_TTL,
    )
    card = build_approval_card(
        plan, request.action_id, requested_by=click.user, expires_at=request.expires_at
    )
    await bot.outbox.post(channel, card)
    await bot.outbox.respond(
        click.response_url, notice(f"🔐 approval requested in <#{channel}>"), replace_original=True
    )


async def cancel(bot: BotContext, click: Click) -> None:
    await bot.outbox.respond(
        click.response_url, notice("cancelled; nothing was done"), replace_original=True
    )


# -- Approve / Reject -----------------------------------------------------------------------


async def approve(bot: BotContext, click: Click) -> None:
    loaded = await _load_authorized(bot, click)
    if loaded is None:
        return
    request, approver = loaded
    now = bot.clock()
    refusal = judge_approval(request, click.user, now)
    if refusal:
        expired = (
            request.policy == "approval"
            and request.status == "pending"
            and click.user != request.requested_by
            and now >= request.expires_at
        )
        if expired:
            await bot.pending.move(request, "expired", by=click.user, decision="expired")
            await _close_card(bot, click, request, "⌛ approval request expired")
        if request.status == "pending":  # a refused approval attempt is audited
            await audit_denied(
                bot,
                approver,
                _spec(request).key,
                {**request.arguments, "action_id": request.action_id, "click": "approve"},
                refusal,
            )
        await _tell(bot, click, notice(refusal, "error"))
        return
    requester = await bot.authz.caller(request.requested_by, request.arguments.get("channel"))
    try:
        plan = await bot.execute(request.arguments["argv"], requester, bot.runtime)
    except GepettoError as e:
        await bot.pending.move(request, "cancelled", by=click.user, decision=f"stale: {e}")
        await _close_card(bot, click, request, f"the plan is stale ({e}); ask again")
        return
    assert isinstance(plan, PlanView)
    drift = plan_drift(request.plan, plan)
    if drift:
        await bot.pending.move(request, "cancelled", by=click.user, decision="plan changed")
        await _close_card(
            bot, click, request, "the plan changed: " + "; ".join(drift) + "; ask again"
        )
        return
    started = await bot.pending.move(request, "executing", by=click.user, decision="approved")
    if started is None:
        await _tell(bot, click, notice("nothing new: this request was already decided", "info"))
        return
    channel = str(request.arguments.get("channel") or click.channel)
    lines = context_lines(request.requested_by, approved_by=click.user)
    await run_confirmed(
        bot,
        started,
        requester,
        channel=channel,
        lines=lines,
        approved_by=click.user,
        card_ts=click.message_ts,
    )


async def reject(bot: BotContext, click: Click) -> None:
    loaded = await _load_authorized(bot, click)
    if loaded is None:
        return
    request, _ = loaded
    done = await bot.pending.move(request, "cancelled", by=click.user, decision="rejected")
    if done is None:
        await _tell(bot, click, notice("nothing new: this request was already decided", "info"))
        return
    await _close_card(bot, click, request, f"rejected by <@{click.user}>")


async def _close_card(bot: BotContext, click: Click, request: PendingAction, why: str) -> None:
    if click.message_ts:
        lines = context_lines(request.requested_by)
        await bot.outbox.update_now(
            click.channel,
            click.message_ts,
            build_final_card(plan_title(request), None, False, lines, error=why),
        )


# -- alert: Back off ------------------------------------------------------------------------


async def alert_backoff(bot: BotContext, click: Click) -> None:
    loaded = await _load_authorized(bot, click)
    if loaded is None:
        return
    action, caller = loaded
    done = await bot.pending.move(action, "done", by=click.user, decision="back off")
    if done is None:
        await _tell(bot, click, notice("nothing new: already handled", "info"))
        return
    key = str(action.arguments.get("alert_key", ""))
    link = await bot.permalink(click.channel, click.message_ts) if click.message_ts else None
    await bot.runtime.state.add_audit(
        actor=caller.actor,
        source="slack",
        verb="alert backoff",
        arguments={"alert_key": key},
        allowed=True,
        result="acknowledged: the back-off stays in force",
        message_link=link,
    )
    await bot.alerts.set_state(
        key, "acknowledged", f"backing off (by <@{click.user}>): no retry until the cool-down ends"
    )


# -- reading aids: paging and sharing -------------------------------------------------------


async def page(bot: BotContext, click: Click) -> None:
    try:
        view_id, number = parse_page_value(click.value)
    except (ValueError, KeyError):
        return
    loaded = await load_view(bot, view_id)
    if loaded is None:
        await _tell(bot, click, notice("this list is too old to page; run the command again"))
        return
    result, _ = loaded
    message = result_message(result, page=number, page_context=view_id, share_value=view_id)
    await bot.outbox.respond(click.response_url, message, replace_original=True)


async def share(bot: BotContext, click: Click) -> None:
    loaded = await load_view(bot, click.value)
    if loaded is None:
        await _tell(bot, click, notice("this answer is too old to share; run the command again"))
        return
    result, argv = loaded
    lines = [f"`/gepetto {' '.join(argv)}` shared by <@{click.user}>"]
    await bot.outbox.post(
        click.channel, result_message(result, lines=lines, page_context=click.value)
    )
