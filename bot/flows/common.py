"""Small pieces every flow shares: denial audit, offers for table rows, stored views."""

from __future__ import annotations

from typing import Any

from bot.action_ids import DEPLOY_ACTION_ID
from bot.approvals import OFFER_TTL, VIEW_TTL
from bot.bot_context import BotContext
from gepetto_core.commands import VERBS, Caller
from gepetto_core.views import Result, RowAction, Table, dump_result, load_result

VIEW_VERB = "view"
MAX_OFFERS = 100  # Deploy buttons per table (ten pages of ten)


async def audit_denied(
    bot: BotContext,
    caller: Caller,
    verb: str,
    arguments: dict[str, Any],
    reason: str,
    message_link: str | None = None,
) -> None:
    """A refused mutation is one audit row too (who, what, why refused, where)."""
    await bot.runtime.state.add_audit(
        actor=caller.actor,
        source="slack",
        verb=verb,
        arguments=arguments,
        allowed=False,
        result=f"denied: {reason}"[:500],
        message_link=message_link,
    )


def _is_scales(result: Result) -> bool:
    if not isinstance(result, Table):
        return False
    keys = {c.key for c in result.columns}
    return {"chute_id", "server_id", "fits"} <= keys


async def with_deploy_offers(bot: BotContext, result: Result, requested_by: str) -> Result:
    """``scales`` rows get a Deploy button, each an opaque pending-action id. Rows that do not
    fit now get one too (an operator may overrule the value model); the click shows the plan,
    which refuses with the reason if the chute cannot be placed there."""
    if not _is_scales(result):
        return result
    assert isinstance(result, Table)
    policy = VERBS["deploy"].form().policy
    actions: list[list[RowAction]] = []
    for index, row in enumerate(result.rows):
        if index >= MAX_OFFERS:
            actions.append([])
            continue
        chute_id, server_id = str(row["chute_id"]), str(row["server_id"])
        offer = await bot.pending.create(
            verb="deploy",
            arguments={"argv": ["deploy", "-c", chute_id, "-s", server_id]},
            plan={"row": {k: v for k, v in row.items() if isinstance(v, str | int | float)}},
            requested_by=requested_by,
            policy=policy,
            ttl=OFFER_TTL,
        )
        actions.append(
            [
                RowAction(
                    label="Deploy",
                    action_id=DEPLOY_ACTION_ID,
                    value=offer.action_id,
                    style="primary",
                )
            ]
        )
    return Table.model_validate({**result.model_dump(), "actions_per_row": actions})


async def store_view(bot: BotContext, result: Result, argv: list[str], user: str) -> str:
    """Keep a read's result server-side, so paging and sharing show the same data."""
    view = await bot.pending.create(
        verb=VIEW_VERB,
        arguments={"argv": argv, "result": dump_result(result)},
        requested_by=user,
        policy="none",
        ttl=VIEW_TTL,
    )
    return view.action_id


async def load_view(bot: BotContext, view_id: str) -> tuple[Result, list[str]] | None:
    view = await bot.pending.get(view_id)
    if view is None or view.verb != VIEW_VERB or bot.clock() >= view.expires_at:
        return None
    return load_result(view.arguments["result"]), list(view.arguments.get("argv", []))
