"""The fleet map and the report in Slack (#26): a message with the words, the PNG in its thread,
and the daily report digest in the alert channel.

The image is drawn off the event loop (matplotlib takes about a second for 100 servers; Slack
acks and lease renewals must not wait) and shared with the files API (`bot.uploads`). If the
channel refuses the message (the bot is not in it), the caller gets the text ephemerally.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from bot.bot_context import BotContext
from bot.cards import notice, result_message
from bot.outbox import SlackSendError
from bot.render import fallback_text
from bot.uploads import UploadError, upload_png
from gepetto_core.commands import parse
from gepetto_core.commands.registry import Caller
from gepetto_core.errors import GepettoError
from gepetto_core.models.state import AlertRecord
from gepetto_core.render_png import render_result_png
from gepetto_core.views import FleetMap, ReportView

log = logging.getLogger(__name__)

DIGEST_CALLER = Caller(actor="gepetto:digest", source="slack", role="viewer")


def picture_filename(view: FleetMap | ReportView, at: datetime) -> str:
    kind = "fleet" if isinstance(view, FleetMap) else f"report-{view.report.window}"
    return f"gepetto-{kind}-{at:%Y%m%d-%H%M}.png"


async def post_picture(
    bot: BotContext, channel: str, view: FleetMap | ReportView
) -> tuple[str, str]:
    """Post the words in `channel`, then upload the image into that message's thread.
    Returns (channel id, ts). Raises SlackSendError (nothing posted) or UploadError (the words
    are posted, the image is not)."""
    channel_id, ts = await bot.outbox.post(channel, result_message(view))
    await upload_picture(bot, channel_id, ts, view)
    return channel_id, ts


async def upload_picture(
    bot: BotContext, channel_id: str, thread_ts: str, view: FleetMap | ReportView
) -> None:
    png = await asyncio.to_thread(render_result_png, view)
    assert png is not None, "fleet maps and reports always have an image"
    await upload_png(
        bot.client,
        channel=channel_id,
        thread_ts=thread_ts,
        png=png,
        filename=picture_filename(view, bot.clock()),
        title=view.title,
        alt_text=fallback_text(view),
    )


async def answer_with_picture(
    bot: BotContext, channel: str, user: str, view: FleetMap | ReportView
) -> None:
    """The slash command's answer for `fleet` / `report`: in the channel, image in the thread."""
    try:
        channel_id, ts = await bot.outbox.post(channel, result_message(view))
    except SlackSendError as e:  # e.g. not_in_channel: the words to the caller alone
        log.info("fleet/report not posted in %s: %s", channel, e.error)
        await bot.outbox.ephemeral(channel, user, result_message(view))
        await bot.outbox.ephemeral(
            channel, user, notice("Invite gepetto to this channel to get the image.", "warning")
        )
        return
    try:
        await upload_picture(bot, channel_id, ts, view)
    except UploadError as e:
        log.info("image not uploaded in %s: %s", channel_id, e.error)
        await bot.outbox.ephemeral(
            channel, user, notice(f"The image could not be uploaded ({e.error}).", "warning")
        )


# --- the daily digest --------------------------------------------------------------------


def digest_due(now: datetime, hour: int, last_sent_day: str | None) -> str | None:
    """The day (YYYY-MM-DD, UTC) whose digest is due at `now`, or None: once a day, from
    `hour` o'clock on, if that day's has not been sent."""
    if now.hour < hour:
        return None
    day = f"{now:%Y-%m-%d}"
    return None if last_sent_day == day else day


class DailyDigest:
    """Posts `report 24h` to the alert channel once a day at `hour` (UTC).

    Called after every autoscaler round (so only the leader posts, and `now` is the round's
    time); the day already posted is kept in gepetto_alerts (key `digest:YYYY-MM-DD`), so a
    restart or a new leader does not post it twice.
    """

    def __init__(self, bot: BotContext, hour: int, channel: str) -> None:
        self._bot = bot
        self._hour = hour
        self._channel = channel
        self._sent_day: str | None = None
        self._running: asyncio.Task[None] | None = None

    def after_round(self, now: datetime) -> None:
        if digest_due(now, self._hour, self._sent_day) is None:
            return
        if self._running is not None and not self._running.done():
            return
        self._running = self._bot.background.spawn(self.post_if_due(now), name="daily-digest")

    async def post_if_due(self, now: datetime) -> bool:
        day = digest_due(now, self._hour, self._sent_day)
        if day is None:
            return False
        key = f"digest:{day}"
        state = self._bot.runtime.state
        if await state.get_alert(key) is not None:
            self._sent_day = day
            return False
        try:
            view = await self._bot.execute(parse("report 24h"), DIGEST_CALLER, self._bot.runtime)
            assert isinstance(view, ReportView)
            channel, ts = await post_picture(self._bot, self._channel, view)
        except (GepettoError, SlackSendError, UploadError) as e:
            log.warning("daily digest not posted: %s", e)
            return False
        await state.save_alert(
            AlertRecord(
                alert_key=key,
                channel=channel,
                message_ts=ts,
                state="resolved",
                first_at=now,
                last_at=now,
                payload={"kind": "digest", "summary": view.summary},
            )
        )
        self._sent_day = day
        return True


def next_digest_after(now: datetime, hour: int) -> datetime:
    """When the next digest is due (for status lines)."""
    at = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return at if at > now else at + timedelta(days=1)
