"""Event intake straight from a validator's socket.io feed (`docs/protocol.md#event-feed`).

Connects over WebSocket, emits ``authenticate`` with headers signed for purpose ``sockets``,
then receives ``miner_broadcast`` envelopes. Only reasons a validator may send are forwarded,
each with ``validator`` added, one at a time and in arrival order. The connection is re-made with
capped exponential back-off after any failure (refused, auth failed, dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio

from gepetto_core.adapters.events_redis import EventHandler, deliver, reconnect_delay
from gepetto_core.adapters.signing import Signer, signed_headers
from gepetto_core.errors import InvalidInputError
from gepetto_core.models.events import parse_broadcast

log = logging.getLogger(__name__)


class SocketIoEventSource:
    """One validator's broadcast feed, delivered to ``handler``."""

    def __init__(
        self,
        url: str,
        signer: Signer,
        validator_hotkey: str,
        handler: EventHandler,
        *,
        socketio_path: str = "socket.io",
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        connect_timeout: float = 10.0,
        http_session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._signer = signer
        self.validator_hotkey = validator_hotkey
        self._handler = handler
        self._path = socketio_path
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._connect_timeout = connect_timeout
        self._http_session = http_session
        self._clock = clock
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.ready = asyncio.Event()  # set while connected and authenticated
        self.connections = 0  # successful authentications so far
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"SocketIoEventSource({self.url!r}, validator={self.validator_hotkey!r})"

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Stay connected until ``stop`` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        consumer = asyncio.create_task(self._consume(), name="socketio-events-consumer")
        failures = 0
        try:
            while not stop.is_set():
                if await self._session(stop):
                    failures = 0
                if stop.is_set():
                    break
                failures += 1
                delay = reconnect_delay(failures, self._backoff_base, self._backoff_cap)
                log.warning("%r: %s; reconnecting in %.1fs", self, self.last_error, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            self.ready.clear()

    async def _session(self, stop: asyncio.Event) -> bool:
        """One connection's life; True if it authenticated (so the back-off starts over)."""
        kwargs: dict[str, Any] = {"reconnection": False, "handle_sigint": False}
        if self._http_session is not None:
            kwargs["http_session"] = self._http_session
        client = socketio.AsyncClient(**kwargs)
        authenticated = asyncio.Event()
        ended = asyncio.Event()

        async def on_auth_success(_data: Any = None) -> None:
            authenticated.set()

        async def on_auth_failed(data: Any = None) -> None:
            error = data.get("error") if isinstance(data, dict) else data
            self.last_error = f"authentication refused: {error}"
            ended.set()

        async def on_broadcast(envelope: Any = None) -> None:
            self._queue.put_nowait(envelope)

        async def on_disconnect(*_args: Any) -> None:
            ended.set()

        client.on("auth_success", on_auth_success)
        client.on("auth_failed", on_auth_failed)
        client.on("miner_broadcast", on_broadcast)
        client.on("disconnect", on_disconnect)
        try:
            try:
                await asyncio.wait_for(
                    client.connect(self.url, transports=["websocket"], socketio_path=self._path),
                    timeout=self._connect_timeout,
                )
                headers = signed_headers(self._signer, purpose="sockets", clock=self._clock)
                await client.emit("authenticate", headers)
                async with asyncio.timeout(self._connect_timeout):
                    await _first_of(authenticated, ended, stop)
            except (socketio.exceptions.SocketIOError, OSError, aiohttp.ClientError) as e:
                self.last_error = f"connection failed ({type(e).__name__})"
                return False
            except TimeoutError:
                self.last_error = "connection or authentication timed out"
                return False
            if not authenticated.is_set():
                if not ended.is_set() and not stop.is_set():
                    self.last_error = "no answer to authenticate"
                return False
            self.connections += 1
            self.ready.set()
            log.info("%r: connected and authenticated", self)
            await _first_of(ended, stop)
            if not stop.is_set():
                self.last_error = "disconnected by the server"
            return True
        finally:
            self.ready.clear()
            with contextlib.suppress(Exception):  # closing a broken socket may fail; it is gone
                await client.disconnect()

    async def _consume(self) -> None:
        while True:
            envelope = await self._queue.get()
            try:
                event = parse_broadcast(envelope, self.validator_hotkey)
            except InvalidInputError as e:
                log.warning("%r: skipping malformed broadcast: %s", self, e)
                continue
            if event is None:
                log.debug("%r: ignoring broadcast with an unhandled reason", self)
                continue
            await deliver(self._handler, event, repr(self))


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
