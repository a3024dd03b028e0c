"""Run a confirmed (or approved) action in the channel: one card updated in place as it goes,
the step details in its thread, the pending action closed, alerts raised or resolved."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from bot.alerts import DeployFailure, failure_key
from bot.bot_context import BotContext
from bot.cards import build_final_card, build_progress_card, line, step_line
from bot.outbox import SlackSendError
from gepetto_core.commands import Caller, parse
from gepetto_core.errors import GepettoError
from gepetto_core.models.state import PendingAction
from gepetto_core.views import Composite, Message, PlanView, Progress, Result, load_result

log = logging.getLogger(__name__)


class ThreadWriter:
    """Posts thread replies in order without holding up the work that produces them."""

    def __init__(self, bot: BotContext, channel: str, thread_ts: str) -> None:
        self._bot = bot
        self._channel = channel
        self._thread_ts = thread_ts
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name=f"slack-thread-{thread_ts}")

    def write(self, line: str) -> None:
        self._queue.put_nowait(line)

    async def _run(self) -> None:
        while (text := await self._queue.get()) is not None:
            try:
                await self._bot.outbox.post(self._channel, line(text), thread_ts=self._thread_ts)
            except SlackSendError as e:
                log.warning("thread reply not delivered: %s", e)

    async def close(self) -> None:
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def plan_title(action: PendingAction) -> str:
    if action.plan and action.plan.get("kind") == "plan":
        plan = load_result(action.plan)
        if isinstance(plan, PlanView):
            return plan.title
    return " ".join(action.arguments.get("argv", [action.verb]))


def outcome_ok(result: Result) -> bool:
    if isinstance(result, Message):
        return result.level != "error"
    if isinstance(result, Progress):
        return not result.failed
    if isinstance(result, Composite):
        return all(outcome_ok(item) for item in result.items)
    return True


def _failure_reason(result: Result) -> str:
    if isinstance(result, Composite):
        for item in result.items:
            if isinstance(item, Message) and item.level == "error":
                return item.text
            if isinstance(item, Progress) and item.failed:
                return item.detail or "failed"
    return "failed"


def _deploy_target(action: PendingAction) -> tuple[str, str] | None:
    argv = list(action.arguments.get("argv", []))
    if not argv or argv[0] != "deploy":
        return None
    opts = parse(argv).opts
    return str(opts["chute"]), str(opts["server"])


class _ProgressReport:
    """Shows an action's progress: the card is edited, every step passed gets its line in the
    card's thread, and the first failure its own line."""

    def __init__(
        self,
        bot: BotContext,
        channel: str,
        card_ts: str,
        title: str,
        lines: list[str],
        thread: ThreadWriter,
    ) -> None:
        self._bot, self._channel, self._card_ts = bot, channel, card_ts
        self._title, self._lines, self._thread = title, lines, thread
        self._last: Progress | None = None

    async def __call__(self, progress: Progress) -> None:
        before, self._last = self._last, progress
        card = build_progress_card(self._title, progress, self._lines)
        self._bot.outbox.update(self._channel, self._card_ts, card)
        start = before.current if before is not None else 0
        for done in range(start, progress.current):
            detail = (
                f" — {progress.detail}" if progress.detail and done == progress.current - 1 else ""
            )
            self._thread.write(f"✅ {progress.steps[done]}{detail}")
        if progress.failed and (before is None or not before.failed):
            self._thread.write(step_line(progress))


async def run_confirmed(
    bot: BotContext,
    action: PendingAction,
    caller: Caller,
    *,
    channel: str,
    lines: list[str],
    approved_by: str | None = None,
    card_ts: str | None = None,
) -> bool:
    """Execute ``action`` (already moved to ``executing``) as ``caller``; True when it worked."""
    title = plan_title(action)
    parsed = parse(action.arguments["argv"])
    is_deploy = parsed.verb == "deploy"
    first: Progress = Progress(current=0, detail="starting")
    card = (
        build_progress_card(title, first, lines)
        if is_deploy
        else build_final_card(f"⏳ {title}", None, True, [*lines, "running…"])
    )
    if card_ts is None:
        channel, card_ts = await bot.outbox.post(channel, card)
    else:
        await bot.outbox.update_now(channel, card_ts, card)
    link = await bot.permalink(channel, card_ts)
    thread = ThreadWriter(bot, channel, card_ts)
    on_progress = _ProgressReport(bot, channel, card_ts, title, lines, thread)
    ok, error, result = False, "", None
    try:
        result = await bot.execute(
            parsed,
            caller,
            bot.runtime,
            confirmed=True,
            approved_by=approved_by,
            progress=on_progress,
            poll_seconds=bot.config.deploy_poll_seconds,
            message_link=link,
        )
        ok = outcome_ok(result)
        error = "" if ok else _failure_reason(result)
    except GepettoError as e:
        error = str(e)
        thread.write(f"❌ {error}")
    finally:
        await thread.close()
    summary = "ok" if ok else error
    footer = [*lines, "done" if ok else "failed"]
    if link:
        footer.append(f"<{link}|this card>")
    await bot.outbox.update_now(
        channel,
        card_ts,
        build_final_card(title, result, ok, footer, error=error if not result else ""),
    )
    await bot.pending.finish(action, ok, summary)
    await _alerts_after(bot, action, ok, error, caller)
    return ok


async def _alerts_after(
    bot: BotContext, action: PendingAction, ok: bool, error: str, caller: Caller
) -> None:
    target = _deploy_target(action)
    if target is None or not bot.alerts.enabled:
        if ok and action.arguments.get("alert_key") and action.verb == "undeploy":
            await bot.alerts.set_state(
                action.arguments["alert_key"], "resolved", f"undeployed by <@{caller.actor}>"
            )
        return
    chute_key, server_key = target
    chute, server = await _resolve_ids(bot, chute_key, server_key)
    key = action.arguments.get("alert_key") or failure_key(chute[0], server[0])
    if ok:
        await bot.alerts.set_state(key, "resolved", f"deployed by <@{caller.actor}>")
        return
    await bot.alerts.deploy_failures(
        [
            DeployFailure(
                chute_id=chute[0],
                server_id=server[0],
                reason=error or "failed",
                at=bot.clock(),
                chute_name=chute[1],
                server_name=server[1],
                deployment_id=await _live_deployment(bot, chute[0], server[0]),
            )
        ]
    )


async def _resolve_ids(
    bot: BotContext, chute_key: str, server_key: str
) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
    inv = bot.runtime.inventory
    chute = await inv.get_chute(chute_key)
    server = await inv.get_server(server_key)
    return (
        (chute.chute_id, chute.name) if chute else (chute_key, None),
        (server.server_id, server.name) if server else (server_key, None),
    )


async def _live_deployment(bot: BotContext, chute_id: str, server_id: str) -> str | None:
    rows = await bot.runtime.inventory.list_deployments(server_id)
    mine = [d for d in rows if d.chute_id == chute_id and not d.active]
    return mine[-1].deployment_id if mine else None


def context_lines(requested_by: str, **more: Any) -> list[str]:
    lines = [f"requested by <@{requested_by}>"]
    for label, user in more.items():
        if user:
            lines.append(f"{label.replace('_', ' ')} <@{user}>")
    return lines
