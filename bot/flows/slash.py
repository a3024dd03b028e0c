"""``/gepetto <command>`` after the ack: parse, authorize, run through the command layer.

Reads answer the invoker ephemerally (with Share and paging buttons); a mutation answers with
its plan and a Confirm button, and runs in the channel once confirmed (``bot.flows.clicks``).
"""

from __future__ import annotations

import logging
from typing import Any

from bot.approvals import OFFER_TTL
from bot.bot_context import BotContext
from bot.cards import build_plan_card, notice, result_message
from bot.flows.common import audit_denied, store_view, with_deploy_offers
from bot.pictures import answer_with_picture
from gepetto_core.commands import parse, spec_for
from gepetto_core.errors import GepettoError, UsageError
from gepetto_core.views import FleetMap, PlanView, ReportView, dump_result

log = logging.getLogger(__name__)


async def run_slash_command(bot: BotContext, body: dict[str, Any]) -> None:
    text = str(body.get("text") or "").strip() or "help"
    user = str(body["user_id"])
    channel = str(body.get("channel_id") or "")
    response_url = str(body.get("response_url") or "")

    async def answer(message: Any) -> None:
        if not await bot.outbox.respond(response_url, message):
            await bot.outbox.ephemeral(channel, user, message)

    try:
        parsed = parse(text)
    except UsageError as e:
        await answer(notice(str(e), "warning"))
        return
    spec = spec_for(parsed)
    argv = list(parsed.argv)
    caller = await bot.authz.caller(user, channel)
    decision = bot.authz.check(caller, spec)
    if not decision.allowed:
        if spec.mutation:
            await audit_denied(bot, caller, spec.key, {"argv": argv}, decision.reason)
        await answer(notice(decision.reason, "error"))
        return
    try:
        result = await bot.execute(parsed, caller, bot.runtime)
    except GepettoError as e:
        await answer(notice(str(e), "error"))
        return
    if spec.mutation:
        assert isinstance(result, PlanView), "an unconfirmed mutation returns its plan"
        if not result.steps:
            await answer(notice(f"{result.title}: nothing to do", "info"))
            return
        offer = await bot.pending.create(
            verb=spec.key,
            arguments={"argv": argv, "channel": channel},
            plan=dump_result(result),
            requested_by=user,
            policy=spec.policy,
            ttl=OFFER_TTL,
        )
        card = build_plan_card(result, offer.action_id, policy=spec.policy, requested_by=user)
        await answer(card)
        return
    if isinstance(result, FleetMap | ReportView):  # #26: words in the channel, PNG in thread
        await answer_with_picture(bot, channel, user, result)
        return
    result = await with_deploy_offers(bot, result, user)
    view_id = await store_view(bot, result, argv, user)
    await answer(result_message(result, share_value=view_id, page_context=view_id))
