"""The App Home tab (#26): fleet summary, autoscaler mode with pause / resume / shadow buttons,
pending approvals, the last alerts.

`build_home_view` is pure (a `HomeData` in, a Block Kit home view out) and stays far inside
Slack's view limits: at most `MAX_LISTED` approvals and alerts, about 20 blocks of 100, every
text cut to its block's limit. `load_home` reads what it shows from PostgreSQL only (the
latest fleet history snapshot, not a new planning round), so opening the tab is cheap.
`publish_home` is called on `app_home_opened` and after a button on it changed something.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.bot_context import BotContext
from bot.render.kit import Block, context, escape_mrkdwn, plain_text, section
from gepetto_core.models.history import FleetSnapshot
from gepetto_core.models.state import AlertRecord, AutoscalerMode, PendingAction
from gepetto_core.render_fleet_text import counts_text

HOME_PAUSE_ACTION_ID = "gepetto_home_pause"
HOME_RESUME_ACTION_ID = "gepetto_home_resume"
HOME_SHADOW_ACTION_ID = "gepetto_home_shadow"
# Button -> the command it runs (the same verb, role and audit as typing it).
HOME_COMMANDS: dict[str, str] = {
    HOME_PAUSE_ACTION_ID: "autoscaler pause 1h",
    HOME_RESUME_ACTION_ID: "autoscaler resume",
    HOME_SHADOW_ACTION_ID: "autoscaler shadow",
}
MAX_LISTED = 10
MAX_SECTION = 3000
ALERTS_SINCE = timedelta(days=1)


@dataclass(frozen=True)
class HomeData:
    now: datetime
    mode: AutoscalerMode
    fleet: FleetSnapshot | None = None
    approvals: Sequence[PendingAction] = ()
    alerts: Sequence[AlertRecord] = ()
    notice: str | None = None  # the outcome of the last button, shown to the clicker


def _button(text: str, action_id: str, style: str | None, confirm: str) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": plain_text(text),
        "action_id": action_id,
        "value": action_id,
        "confirm": {
            "title": plain_text(f"{text}?"),
            "text": plain_text(confirm),
            "confirm": plain_text(text),
            "deny": plain_text("Cancel"),
        },
    }
    if style:
        button["style"] = style
    return button


def _mode_line(mode: AutoscalerMode) -> str:
    if mode.mode == "paused" and mode.paused_until is not None:
        return f"*paused* until {mode.paused_until:%Y-%m-%d %H:%M} UTC (by {mode.updated_by})"
    return f"*{mode.mode}* (set by {escape_mrkdwn(mode.updated_by)})"


def _cut(text: str, limit: int = MAX_SECTION) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_home_view(data: HomeData) -> dict[str, Any]:
    blocks: list[Block] = [{"type": "header", "text": plain_text("gepetto")}]
    if data.notice:
        blocks.append(section(_cut(escape_mrkdwn(data.notice))))
    blocks.append({"type": "header", "text": plain_text("Fleet")})
    if data.fleet is None:
        blocks.append(section("No fleet history yet: the autoscaler records one each round."))
    else:
        blocks.append(section(_cut(escape_mrkdwn(counts_text(data.fleet)))))
        age = max(0, int((data.now - data.fleet.taken_at).total_seconds() // 60))
        blocks.append(
            context(
                f"as of {data.fleet.taken_at:%H:%M} UTC ({age} min ago) · "
                "`/gepetto fleet` for the map, `/gepetto report` for the day"
            )
        )
    blocks.append({"type": "header", "text": plain_text("Autoscaler")})
    blocks.append(section(_mode_line(data.mode)))
    buttons = []
    if data.mode.mode != "paused":
        buttons.append(
            _button("Pause 1h", HOME_PAUSE_ACTION_ID, "danger", "No deploys for an hour.")
        )
    if data.mode.mode != "active":
        buttons.append(_button("Resume", HOME_RESUME_ACTION_ID, "primary", "Plan and act again."))
    if data.mode.mode != "shadow":
        buttons.append(
            _button("Shadow", HOME_SHADOW_ACTION_ID, None, "Plan and report, act on nothing.")
        )
    blocks.append({"type": "actions", "block_id": "home_autoscaler", "elements": buttons})
    blocks.append(context("Buttons need the operator role; every change is audited."))

    blocks.append({"type": "header", "text": plain_text("Pending approvals")})
    if not data.approvals:
        blocks.append(section("None waiting."))
    else:
        lines = [
            f"• `{escape_mrkdwn(' '.join(a.arguments.get('argv', [a.verb])))[:200]}` by "
            f"<@{a.requested_by}>, expires {a.expires_at:%H:%M} UTC"
            for a in data.approvals[:MAX_LISTED]
        ]
        blocks.append(section(_cut("\n".join(lines))))
    blocks.append({"type": "header", "text": plain_text("Last alerts")})
    if not data.alerts:
        blocks.append(section("No alerts in the last day."))
    else:
        lines = [
            f"• {escape_mrkdwn(a.alert_key)[:150]}: {a.state}, ×{a.occurrences}, "
            f"last {a.last_at:%m-%d %H:%M} UTC"
            for a in data.alerts[:MAX_LISTED]
        ]
        blocks.append(section(_cut("\n".join(lines))))
    blocks.append({"type": "divider"})
    blocks.append(context(f"updated {data.now:%Y-%m-%d %H:%M:%S} UTC"))
    return {"type": "home", "blocks": blocks}


async def load_home(bot: BotContext, notice: str | None = None) -> HomeData:
    now = bot.clock()
    state = bot.runtime.state
    alerts = await state.list_alerts(since=now - ALERTS_SINCE)
    alerts = sorted(
        (a for a in alerts if not a.alert_key.startswith("digest:")),
        key=lambda a: a.last_at,
        reverse=True,
    )
    return HomeData(
        now=now,
        mode=await state.get_autoscaler_mode(),
        fleet=await bot.runtime.history.latest(),
        approvals=await state.list_waiting_approvals(now, limit=MAX_LISTED),
        alerts=alerts[:MAX_LISTED],
        notice=notice,
    )


async def publish_home(bot: BotContext, user_id: str, notice: str | None = None) -> None:
    view = build_home_view(await load_home(bot, notice))
    await bot.client.views_publish(user_id=user_id, view=view)
