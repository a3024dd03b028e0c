"""The bot's own messages, as pure ``build_*`` functions returning a ``SlackMessage``.

Tables, plans and progress are drawn by ``bot.render``; these wrap them into cards (plan with
Confirm, approval request, deploy progress, final result, alerts, storm, recycle, cluster
reachability, digest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from bot.action_ids import (
    ALERT_BACKOFF_ACTION_ID,
    ALERT_RETRY_ACTION_ID,
    ALERT_UNDEPLOY_ACTION_ID,
    APPROVE_ACTION_ID,
    CANCEL_ACTION_ID,
    CONFIRM_ACTION_ID,
    REJECT_ACTION_ID,
)
from bot.alerts import DigestBuffer, StormSummary
from bot.render import (
    Block,
    SlackMessage,
    build_button,
    build_plan_blocks,
    build_progress_blocks,
    build_result_blocks,
    escape_mrkdwn,
    fallback_text,
    fit_message,
)
from bot.render.kit import context, section
from gepetto_core.scheduling.cluster_alerts import ClusterAlert
from gepetto_core.views import Confirm, PlanView, Progress, Result, RowAction


def _message(blocks: list[Block], text: str) -> SlackMessage:
    fitted, fitted_text = fit_message(blocks, text)
    return SlackMessage(fitted, fitted_text)


def notice(text: str, level: str = "info") -> SlackMessage:
    emoji = {"info": "ℹ️", "success": "✅", "warning": "⚠️", "error": "❌"}.get(level, "")
    return _message([section(f"{emoji} {text}")], f"{emoji} {text}")


def line(text: str) -> SlackMessage:
    """One plain line (thread replies)."""
    return _message([section(text)], text)


def result_message(
    result: Result, *, lines: Sequence[str] = (), share_value: str | None = None, **options: Any
) -> SlackMessage:
    """Any view model as a message, with context lines (who, data age...) under it."""
    blocks = build_result_blocks(result, share_value=share_value, **options)
    if lines:
        at = len(blocks) - 1 if share_value is not None else len(blocks)
        blocks.insert(at, context(" · ".join(lines)))
    return _message(blocks, fallback_text(result))


# -- plans and approvals --------------------------------------------------------------------


def build_plan_card(
    plan: PlanView, action_id: str, *, policy: str, requested_by: str, stale_note: str = ""
) -> SlackMessage:
    """The plan of a mutation with Confirm (behind a confirm dialog) and Cancel."""
    title = plan.title[:90]
    if policy == "approval":
        confirm = RowAction(
            label="Request approval",
            action_id=CONFIRM_ACTION_ID,
            value=action_id,
            style="primary",
            confirm=Confirm(
                title="Ask for approval?",
                text=f"{title}\nA second person must approve within 15 minutes.",
                confirm="Ask",
                style="primary",
            ),
        )
    else:
        confirm = RowAction(
            label="Confirm",
            action_id=CONFIRM_ACTION_ID,
            value=action_id,
            style="primary",
            confirm=Confirm(title="Go ahead?", text=title, confirm="Do it", style="danger"),
        )
    cancel = RowAction(label="Cancel", action_id=CANCEL_ACTION_ID, value=action_id)
    blocks = build_plan_blocks(plan.model_copy(update={"actions": [confirm, cancel]}))
    lines = [f"requested by <@{requested_by}>", f"policy: {policy}"]
    if stale_note:
        lines.append(stale_note)
    blocks.insert(len(blocks) - 1, context(" · ".join(lines)))
    return _message(blocks, f"plan: {plan.title}")


def build_approval_card(
    plan: PlanView, request_id: str, *, requested_by: str, expires_at: datetime
) -> SlackMessage:
    approve = RowAction(
        label="Approve",
        action_id=APPROVE_ACTION_ID,
        value=request_id,
        style="primary",
        confirm=Confirm(title="Approve and run?", text=plan.title[:250], confirm="Approve"),
    )
    reject = RowAction(label="Reject", action_id=REJECT_ACTION_ID, value=request_id)
    blocks = build_plan_blocks(plan.model_copy(update={"actions": [approve, reject]}))
    blocks.insert(
        len(blocks) - 1,
        context(
            f"🔐 approval requested by <@{requested_by}> · a second person with the role "
            f"must approve · expires <!date^{int(expires_at.timestamp())}^{{time}}|"
            f"{expires_at:%H:%M} UTC>"
        ),
    )
    return _message(blocks, f"approval needed: {plan.title}")


def build_progress_card(title: str, progress: Progress, lines: Sequence[str]) -> SlackMessage:
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
    blocks += build_progress_blocks(progress)
    if lines:
        blocks.append(context(" · ".join(lines)))
    return _message(blocks, fallback_text(progress.model_copy(update={"title": title})))


def build_final_card(
    title: str, result: Result | None, ok: bool, lines: Sequence[str], error: str = ""
) -> SlackMessage:
    mark = "✅" if ok else "❌"
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{mark} {title}"}}
    ]
    if result is not None:
        blocks += build_result_blocks(result)
    if error:
        blocks.append(section(f"❌ {escape_mrkdwn(error)}"))
    if lines:
        blocks.append(context(" · ".join(lines)))
    return _message(blocks, f"{mark} {title}" + (f": {error}" if error else ""))


def step_line(progress: Progress) -> str:
    """One thread line for the step a progress report reached."""
    if progress.failed:
        name = progress.steps[progress.current]
        return f"❌ {name} — {progress.detail or 'failed'}"
    done = progress.steps[progress.current - 1] if progress.current else "started"
    detail = f" — {progress.detail}" if progress.detail else ""
    return f"✅ {done}{detail}"


# -- alerts ---------------------------------------------------------------------------------


def _failure_lines(payload: Mapping[str, Any]) -> list[str]:
    chute = payload.get("chute_name") or payload.get("chute_id")
    server = payload.get("server_name") or payload.get("server_id")
    lines = [f"*chute* {escape_mrkdwn(str(chute))} · *server* {escape_mrkdwn(str(server))}"]
    if payload.get("deployment_id"):
        lines.append(f"*deployment* `{payload['deployment_id']}`")
    lines.append(f"*reason* {escape_mrkdwn(str(payload.get('reason', '?')))}")
    return lines


# The buttons of an open failure alert, in this order: (action id, label, style).
_ALERT_BUTTONS: tuple[tuple[str, str, Literal["primary", "danger"] | None], ...] = (
    (ALERT_RETRY_ACTION_ID, "Retry", "primary"),
    (ALERT_BACKOFF_ACTION_ID, "Back off", None),
    (ALERT_UNDEPLOY_ACTION_ID, "Undeploy", "danger"),
)


def _alert_buttons(buttons: Mapping[str, str]) -> list[Block]:
    """The alert's buttons that have a pending action (`buttons`: action id -> its id)."""
    return [
        build_button(
            RowAction(label=label, action_id=action_id, value=buttons[action_id], style=style)
        )
        for action_id, label, style in _ALERT_BUTTONS
        if action_id in buttons
    ]


def build_failure_alert(
    payload: Mapping[str, Any],
    *,
    occurrences: int,
    buttons: Mapping[str, str],
    state: str = "open",
    state_note: str = "",
) -> SlackMessage:
    """A failed-deploy alert; ``buttons`` maps action id -> pending-action id (open only)."""
    chute = payload.get("chute_name") or payload.get("chute_id")
    server = payload.get("server_name") or payload.get("server_id")
    head = {"open": "❌ Deploy failed", "acknowledged": "🔕 Deploy failed", "resolved": "✅"}
    title = f"{head.get(state, '❌')} {chute} on {server}"
    if state == "resolved":
        title = f"✅ Resolved: deploy of {chute} on {server}"
    blocks: list[Block] = [
        section(f"*{escape_mrkdwn(title)}*\n" + "\n".join(_failure_lines(payload)))
    ]
    logs = payload.get("log_lines") or []
    if logs:
        blocks.append(
            section("```" + "\n".join(str(x) for x in logs).replace("```", "ˋˋˋ") + "```")
        )
    notes = [f"seen {occurrences} time(s)" if occurrences > 1 else "first seen now"]
    if state_note:
        notes.append(state_note)
    blocks.append(context(" · ".join(notes)))
    if state == "open" and buttons:
        blocks.append({"type": "actions", "elements": _alert_buttons(buttons)})
    return _message(blocks, title)


def build_storm_card(
    summary: StormSummary, since: datetime, *, resolved: bool = False
) -> SlackMessage:
    mark = "✅ Storm over" if resolved else "🌩️ Failure storm"
    text = (
        f"*{mark}: {summary.count} failed deploys since "
        f"<!date^{int(since.timestamp())}^{{time}}|{since:%H:%M} UTC>* "
        f"({summary.chutes} chute(s), {summary.servers} server(s))"
    )
    blocks: list[Block] = [section(text)]
    if summary.suspects:
        blocks.append(
            section(
                "*Shared by most failures:*\n"
                + "\n".join(f"• {escape_mrkdwn(what)}: {n}" for what, n in summary.suspects)
            )
        )
    blocks.append(context("each failure is in the thread, with its buttons"))
    return _message(blocks, f"{mark}: {summary.count} failed deploys")


def build_recycle_card(removed: Sequence[tuple[str, str]], failed: int) -> SlackMessage:
    lines = [f"• {escape_mrkdwn(what)} — {escape_mrkdwn(why)}" for what, why in removed]
    head = f"♻️ *Recycle removed {len(removed)} thing(s)*"
    if failed:
        head += f" ({failed} action(s) failed; the next pass retries)"
    return _message([section(head + "\n" + "\n".join(lines))], f"recycle removed {len(removed)}")


def build_digest_card(digest: DigestBuffer) -> SlackMessage:
    counts = ", ".join(f"{result} {n}" for result, n in digest.outcomes.most_common())
    head = f"🤖 *Autoscaler digest* ({digest.rounds} round(s)): {counts or 'no actions'}"
    blocks: list[Block] = [section(head)]
    if digest.lines:
        blocks.append(section("\n".join(f"• {escape_mrkdwn(x)}" for x in digest.lines)))
    if digest.errors:
        blocks.append(section("⚠️ " + "\n".join(escape_mrkdwn(e) for e in digest.errors[-5:])))
    return _message(blocks, f"autoscaler digest: {counts or 'no actions'}")


def build_cluster_card(alert: ClusterAlert) -> SlackMessage:
    """A cluster (or several at once) became unreachable, or is reachable again."""
    if alert.kind == "unreachable":
        head = f"🔌 *{escape_mrkdwn(alert.text)}*"
        note = "nothing on an unreachable cluster is removed until it is read again"
    else:
        head = f"✅ *{escape_mrkdwn(alert.text)}*"
        note = "reconcile covers it again from this pass"
    return _message([section(head), context(note)], alert.text)
