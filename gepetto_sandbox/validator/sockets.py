"""The sandbox validator's socket.io feed (`docs/protocol.md#event-feed`): clients
``authenticate`` with headers signed for purpose ``sockets``; every broadcast is emitted as
``miner_broadcast``, only to the ``filter_recipients`` hotkeys' latest sessions when the envelope
names them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import socketio
from aiohttp import web

from gepetto_sandbox.validator.auth import AuthFailure, authenticate
from gepetto_sandbox.validator.world import ValidatorWorld

log = logging.getLogger(__name__)


class SocketFeed:
    def __init__(self, world: ValidatorWorld, *, signatures_checked: Callable[[], bool]) -> None:
        self.world = world
        self._signatures_checked = signatures_checked
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp", cors_allowed_origins="*", logger=False, engineio_logger=False
        )
        self.session_hotkey: dict[str, str] = {}
        self.latest_session: dict[str, str] = {}  # hotkey -> its newest sid
        self.connected: set[str] = set()
        self.authenticated = asyncio.Condition()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("authenticate", self._on_authenticate)
        self.sio.on("miner_message", self._on_miner_message)
        world.listeners.append(self._queue.put_nowait)

    def attach(self, app: web.Application) -> None:
        self.sio.attach(app, socketio_path="socket.io")

    def start(self) -> None:
        self._pump = asyncio.create_task(self._pump_broadcasts(), name="sandbox-socket-pump")

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        for sid in list(self.connected):
            with contextlib.suppress(Exception):  # a socket may already be half closed
                await self.sio.disconnect(sid)

    async def drop_all(self) -> None:
        """Disconnect every client (to test reconnects)."""
        for sid in list(self.connected):
            await self.sio.disconnect(sid)

    async def wait_authenticated(self, hotkey: str) -> None:
        async with self.authenticated:
            await self.authenticated.wait_for(lambda: hotkey in self.latest_session)

    async def _on_connect(self, sid: str, environ: Any, auth: Any = None) -> None:
        self.connected.add(sid)

    async def _on_disconnect(self, sid: str, *_args: Any) -> None:
        self.connected.discard(sid)
        hotkey = self.session_hotkey.pop(sid, None)
        if hotkey is not None and self.latest_session.get(hotkey) == sid:
            del self.latest_session[hotkey]

    async def _on_authenticate(self, sid: str, headers: Any = None) -> None:
        try:
            if not isinstance(headers, dict):
                raise AuthFailure(401, "Missing authentication headers")
            if self._signatures_checked():
                hotkey = authenticate(
                    headers,
                    purpose="sockets",
                    body=None,
                    now=self.world.clock(),
                    registered=self.world.metagraph.__contains__,
                )
            else:
                hotkey = headers.get("X-Chutes-Hotkey")
            if hotkey is None:
                raise AuthFailure(401, "Missing authentication headers")
        except AuthFailure as e:
            await self.sio.emit(
                "auth_failed", {"error": f"Authentication failed: {e.detail}"}, to=sid
            )
            await self.sio.disconnect(sid)
            return
        self.session_hotkey[sid] = hotkey
        self.latest_session[hotkey] = sid
        await self.sio.emit("auth_success", {"message": "Authenticated"}, to=sid)
        async with self.authenticated:
            self.authenticated.notify_all()

    async def _on_miner_message(self, sid: str, data: Any = None) -> None:
        if sid not in self.session_hotkey:
            await self.sio.disconnect(sid)
            return
        log.info("miner message from %s: %r", self.session_hotkey[sid], data)

    async def _pump_broadcasts(self) -> None:
        while True:
            envelope = await self._queue.get()
            await self.emit_raw(envelope)

    async def emit_raw(self, envelope: Any) -> None:
        """Emit any payload as ``miner_broadcast`` (tests use it to send malformed ones)."""
        recipients = envelope.get("filter_recipients") if isinstance(envelope, dict) else None
        if recipients is None:
            await self.sio.emit("miner_broadcast", envelope)
            return
        for hotkey in recipients:
            sid = self.latest_session.get(hotkey)
            if sid is not None:
                await self.sio.emit("miner_broadcast", envelope, to=sid)
