"""Everything the bot sends to Slack goes through here: paced, coalesced, ``Retry-After`` aware.

- ``post``: a new message (or thread reply); waits for the channel's next slot (~1/s).
- ``update``: edit a message; returns at once. Edits of one message within ``edit_interval``
  collapse into the latest, which a single flush sends (progress never floods Slack).
- ``respond``: the invoker's ephemeral reply through ``response_url``.

A 429 pauses the channel for ``Retry-After`` seconds and the call is tried again. Every message
is fitted to Slack's limits first (``bot.render.fit_message``), so nothing fails for size.
The pure rules live in ``bot.alerts`` (``ChannelPacer``, ``EditCoalescer``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.alerts import ChannelPacer, EditCoalescer
from bot.render import SlackMessage, fit_message

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_RATE_LIMIT_RETRIES = 5


class SlackSendError(Exception):
    """Slack refused a call for a reason other than rate limiting (the error code is kept)."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"{method}: {error}")
        self.error = error


def _fitted(message: SlackMessage) -> dict[str, Any]:
    blocks, text = fit_message(message.blocks, message.text)
    return {"blocks": blocks, "text": text}


class SlackOutbox:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        post_interval: float = 1.0,
        edit_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._pacer = ChannelPacer(post_interval)
        self._edits = EditCoalescer(edit_interval)
        self._clock = clock
        self._flushes: set[asyncio.Task[None]] = set()
        self.rate_limited = 0  # how many 429s we were given (a metric, and for tests)

    async def _paced(self, channel: str, method: str, call: Callable[[], Awaitable[T]]) -> T:
        for _ in range(MAX_RATE_LIMIT_RETRIES):
            delay = self._pacer.reserve(channel, self._clock())
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                return await call()
            except SlackApiError as e:
                if e.response.status_code != 429:
                    raise SlackSendError(method, str(e.response.get("error"))) from e
                self.rate_limited += 1
                retry_after = float(e.response.headers.get("Retry-After", 1) or 1)
                log.info(
                    "slack %s rate limited in %s; retry in %.0f s", method, channel, retry_after
                )
                self._pacer.retry_after(channel, self._clock(), retry_after)
        raise SlackSendError(method, "ratelimited")

    async def post(
        self, channel: str, message: SlackMessage, *, thread_ts: str | None = None
    ) -> tuple[str, str]:
        """Post; returns (channel id, ts) as Slack answered them."""
        kwargs = _fitted(message)
        if thread_ts:
            kwargs["thread_ts"] = thread_ts

        async def call() -> Any:
            return await self.client.chat_postMessage(channel=channel, **kwargs)

        response = await self._paced(channel, "chat.postMessage", call)
        return str(response["channel"]), str(response["ts"])

    def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        """Queue an edit; the latest content within the edit interval is what gets sent."""
        delay = self._edits.offer(channel, ts, _fitted(message), self._clock())
        if delay is None:
            return  # a flush is already waiting and will send this content
        task = asyncio.create_task(self._flush(channel, ts, delay), name=f"slack-edit-{ts}")
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, channel: str, ts: str, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        kwargs = self._edits.take(channel, ts, self._clock())
        if kwargs is None:
            return

        async def call() -> Any:
            return await self.client.chat_update(channel=channel, ts=ts, **kwargs)

        try:
            await self._paced(channel, "chat.update", call)
        except SlackSendError as e:
            log.warning("could not update message %s in %s: %s", ts, channel, e.error)

    async def delete(self, channel: str, ts: str) -> None:
        async def call() -> Any:
            return await self.client.chat_delete(channel=channel, ts=ts)

        try:
            await self._paced(channel, "chat.delete", call)
        except SlackSendError as e:
            log.info("could not delete message %s in %s: %s", ts, channel, e.error)

    async def update_now(self, channel: str, ts: str, message: SlackMessage) -> None:
        """Queue an edit and wait until it (or a newer one) has been sent."""
        self.update(channel, ts, message)
        await self.drain()

    async def drain(self) -> None:
        """Wait for every queued edit to be sent (the final state of a message must land)."""
        while self._flushes:
            await asyncio.gather(*list(self._flushes), return_exceptions=True)

    async def respond(
        self,
        response_url: str,
        message: SlackMessage,
        *,
        replace_original: bool = False,
        in_channel: bool = False,
    ) -> bool:
        """Reply through a command's or click's ``response_url``; False if Slack refused."""
        if not response_url:
            return False
        kwargs = _fitted(message)
        hook = AsyncWebhookClient(response_url)
        response = await hook.send(
            **kwargs,
            replace_original=replace_original,
            response_type="in_channel" if in_channel else "ephemeral",
        )
        if response.status_code != 200:
            log.info("response_url answered %s", response.status_code)
            return False
        return True

    async def ephemeral(self, channel: str, user: str, message: SlackMessage) -> None:
        kwargs = _fitted(message)
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user, **kwargs)
        except SlackApiError as e:
            log.info("ephemeral to %s failed: %s", user, e.response.get("error"))

    async def close(self) -> None:
        await self.drain()
