"""Event intake from the chutes-miner relay: Redis channel ``miner_events`` carrying
``{"event_type": reason, "event_data": {..., "validator": hotkey}}``
(`docs/protocol.md#event-feed`).

Events are handed to the dispatcher one at a time, in order. A malformed message is logged and
skipped; a failing handler is logged and the intake goes on; a lost Redis connection is retried
forever with capped exponential back-off (the official listener gives up after 10 failures and
relies on a pod restart; we do not).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gepetto_core.errors import GepettoError, InvalidInputError
from gepetto_core.models.events import RELAY_CHANNEL, MinerEvent, parse_relay_message

log = logging.getLogger(__name__)

EventHandler = Callable[[MinerEvent], Awaitable[None]]


def reconnect_delay(failures: int, base: float, cap: float) -> float:
    return float(min(cap, base * (2 ** max(0, failures - 1))))


async def deliver(handler: EventHandler, event: MinerEvent, source: str) -> None:
    """Run the handler; its failure is the handler's problem, never the intake's."""
    try:
        await handler(event)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s: handler failed on %s event", source, event.reason.value)


class RedisEventSource:
    """Subscribes to the relay channel and feeds every known event to ``handler``."""

    def __init__(
        self,
        redis: Redis,
        handler: EventHandler,
        *,
        channel: str = RELAY_CHANNEL,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        poll_interval: float = 1.0,
    ) -> None:
        self._redis = redis
        self._handler = handler
        self.channel = channel
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._poll_interval = poll_interval
        self.ready = asyncio.Event()  # set while subscribed
        self.connections = 0  # successful subscriptions so far (a reconnect adds one)

    async def run(self, stop: asyncio.Event | None = None, *, grace: float = 5.0) -> None:
        """Listen until ``stop`` is set (or the task is cancelled). On stop, the event being
        handled is finished; a connection attempt still hanging after ``grace`` is abandoned."""
        stop = stop or asyncio.Event()
        work = asyncio.create_task(self._run_until(stop), name="redis-events")
        try:
            await _first_done(work, stop)
            if not work.done():
                await asyncio.wait({work}, timeout=grace)
        finally:
            if not work.done():
                work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            self.ready.clear()

    async def _run_until(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                await self._listen(stop)
            except (RedisError, OSError) as e:
                self.ready.clear()
                failures += 1
                delay = reconnect_delay(failures, self._backoff_base, self._backoff_cap)
                log.warning("redis events: %s; reconnecting in %.1fs", type(e).__name__, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
            else:
                failures = 0

    async def _listen(self, stop: asyncio.Event) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self.connections += 1
            self.ready.set()
            while not stop.is_set():
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=self._poll_interval
                )
                if message is not None and message.get("type") == "message":
                    await self._on_message(message["data"])
        finally:
            self.ready.clear()
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    async def _on_message(self, raw: bytes | str) -> None:
        try:
            event = parse_relay_message(raw)
        except InvalidInputError as e:
            log.warning("redis events: skipping malformed message: %s", e)
            return
        if event is None:
            log.debug("redis events: ignoring unknown event type")
            return
        await deliver(self._handler, event, "redis events")


async def _first_done(work: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Wait until ``work`` ends or ``stop`` is set."""
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()


def connect_redis(url: str) -> Redis:
    """A client for the chutes-miner Redis (it connects on its first command)."""
    return Redis.from_url(url)


async def publish_event(redis: Redis, event: MinerEvent, channel: str = RELAY_CHANNEL) -> int:
    """Publish one event in the relay's envelope (what the chutes-miner API does); returns the
    number of subscribers that got it."""
    try:
        receivers: int = await redis.publish(channel, json.dumps(event.relay_envelope()))
    except RedisError as e:
        raise GepettoError(f"could not publish {event.reason.value} event: {e}") from e
    return receivers
