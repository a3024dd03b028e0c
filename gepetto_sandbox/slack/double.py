"""A protocol-faithful Slack double: Web API, Socket Mode WebSocket and ``response_url``.

Reached through the real ``slack_sdk`` clients: ``AsyncWebClient(token=..., base_url=await
double.start())`` (the base URL ends in ``/api/``, as ``urljoin`` needs). It records every call,
answers the methods gepetto uses with realistic ``ts``/``channel`` values, and refuses messages
that break Block Kit limits the way Slack does (``ok: false``, ``invalid_blocks`` etc., judged
by :mod:`gepetto_sandbox.slack.blockkit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from gepetto_sandbox.slack.blockkit import check_message
from gepetto_sandbox.slack.call_args import SlackFail, read_call_args
from gepetto_sandbox.slack.rate_limits import RateRule, retry_after
from gepetto_sandbox.slack.recorded import RecordedCall, SocketAck
from gepetto_sandbox.slack.uploads import FileUploads, UploadedFile
from gepetto_sandbox.slack.views import ViewSurfaces

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

# The bot scopes manifest.yml asks for; a method whose scope the token lacks answers
# `missing_scope` with `needed`/`provided`, as Slack does.
DEFAULT_BOT_SCOPES = frozenset({"commands", "chat:write", "usergroups:read", "files:write"})
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}


RESPONSE_URL_USES = 5  # "up to 5 times within 30 minutes"
# How long the waits below give what a test expects to come: a hang detector, far above what
# anything needs on a loaded machine (not Slack's 3 s ack deadline, which a test asserts on its
# own if it means to).
WAIT_LIMIT = 60.0


class SlackDouble(FileUploads, ViewSurfaces):
    """Fake Slack for tests and the demo. ``await start()`` returns the Web API base URL."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-1-test-token",
        team_id: str = "T0GEPETTO",
        bot_user_id: str = "U0GEPETTO",
        bot_id: str = "B0GEPETTO",
        host: str = "127.0.0.1",
        port: int = 0,
        channels: dict[str, str] | None = None,
        users: dict[str, dict[str, Any]] | None = None,
        usergroups: dict[str, list[str]] | None = None,
        bot_scopes: frozenset[str] = DEFAULT_BOT_SCOPES,
    ) -> None:
        self._bot_token = bot_token
        self._app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self._host = host
        self._port = port
        self.channels = channels if channels is not None else {"C0GEPETTO": "gepetto-ops"}
        self.users = (
            users
            if users is not None
            else {
                "U0OPERATOR": {"name": "operator", "real_name": "Ops Person"},
                "U0APPROVER": {"name": "approver", "real_name": "Second Person"},
            }
        )
        self.usergroups = usergroups if usergroups is not None else {"S0ADMINS": ["U0APPROVER"]}
        self.bot_scopes = bot_scopes
        self.calls: list[RecordedCall] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.files: dict[str, UploadedFile] = {}
        self.home_views: dict[str, dict[str, Any]] = {}  # user id -> the published Home tab
        self.socket_acks: list[SocketAck] = []
        self.base_url = ""
        self._root = ""
        self._last_ts = 0.0
        self._rules: list[RateRule] = []
        self._response_urls: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._changed: asyncio.Condition | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_open: asyncio.Event | None = None
        self._pending_acks: dict[str, tuple[float, asyncio.Future[SocketAck]]] = {}
        self._methods = self._method_table()

    def _method_table(self) -> dict[str, Handler]:
        """Web API method name -> handler."""
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "conversations.info": self._conversations_info,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "views.publish": self._views_publish,
        }

    def __repr__(self) -> str:
        return f"SlackDouble(base_url={self.base_url!r}, calls={len(self.calls)})"

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> str:
        self._changed = asyncio.Condition()
        self._socket_open = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._web_api)
        app.router.add_post("/response/{rid}", self._response_url_post)
        app.router.add_post("/upload/v1/{file_id}", self._upload_post)
        app.router.add_get("/link/", self._socket_mode)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self._root = f"http://{self._host}:{port}"
        self.base_url = f"{self._root}/api/"
        return self.base_url

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        for _, future in self._pending_acks.values():
            future.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- test controls ----------------------------------------------------------------------

    def new_response_url(self) -> str:
        rid = uuid.uuid4().hex
        self._response_urls[rid] = 0
        return f"{self._root}/response/{rid}"

    def rate_limit(
        self, method: str, *, channel: str | None = None, times: int = 1, retry_after: int = 1
    ) -> None:
        """The next ``times`` calls of ``method`` (to ``channel``, if given) get HTTP 429."""
        self._rules.append(RateRule(method, channel, times, retry_after))

    def throttle(self, method: str, *, per_seconds: float, retry_after: int = 1) -> None:
        """At most one call of ``method`` per channel every ``per_seconds``; the rest get 429."""
        self._rules.append(RateRule(method, None, None, retry_after, interval=per_seconds))

    def calls_to(self, method: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.method == method]

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[RecordedCall], bool] | None = None,
        timeout: float = WAIT_LIMIT,  # noqa: ASYNC109 - the tests' natural spelling
    ) -> RecordedCall:
        """The first recorded call of ``method`` matching ``predicate`` (waits for it to come)."""
        assert self._changed is not None, "start() the double first"

        def match() -> RecordedCall | None:
            for call in self.calls:
                if call.method == method and (predicate is None or predicate(call)):
                    return call
            return None

        async with self._changed:
            async with asyncio.timeout(timeout):
                await self._changed.wait_for(lambda: match() is not None)
        found = match()
        assert found is not None
        return found

    async def wait_for_socket(self, timeout: float = WAIT_LIMIT) -> None:  # noqa: ASYNC109
        assert self._socket_open is not None, "start() the double first"
        async with asyncio.timeout(timeout):
            await self._socket_open.wait()

    async def push_envelope(
        self, envelope_type: str, payload: dict[str, Any], *, accepts_response_payload: bool = True
    ) -> str:
        """Send an envelope over the (first) Socket Mode connection; returns its envelope_id."""
        if not self._sockets:
            raise RuntimeError("no Socket Mode client is connected")
        envelope_id = str(uuid.uuid4())
        future: asyncio.Future[SocketAck] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = (time.monotonic(), future)
        await self._sockets[0].send_json(
            {
                "envelope_id": envelope_id,
                "type": envelope_type,
                "payload": payload,
                "accepts_response_payload": accepts_response_payload,
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return envelope_id

    async def wait_for_ack(
        self,
        envelope_id: str,
        timeout: float = WAIT_LIMIT,  # noqa: ASYNC109
    ) -> SocketAck:
        _, future = self._pending_acks[envelope_id]
        async with asyncio.timeout(timeout):
            return await asyncio.shield(future)

    async def send_envelope(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        timeout: float = WAIT_LIMIT,  # noqa: ASYNC109
    ) -> SocketAck:
        return await self.wait_for_ack(await self.push_envelope(envelope_type, payload), timeout)

    # -- HTTP plumbing ----------------------------------------------------------------------

    async def _record(self, call: RecordedCall) -> None:
        self.calls.append(call)
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def _rate_limited(self, method: str, args: dict[str, Any]) -> int | None:
        return retry_after(self._rules, method, str(args.get("channel", "")), time.monotonic())

    async def _web_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await read_call_args(request)
        body_token = args.pop("token", None)  # a token in the body is kept out of recorded args
        auth = request.headers.get("Authorization") or (
            f"Bearer {body_token}" if body_token else None
        )
        call = RecordedCall(method, args, time.monotonic(), auth)
        retry_after = self._rate_limited(method, args)
        if retry_after is not None:
            call.status, call.response = 429, {"ok": False, "error": "ratelimited"}
            await self._record(call)
            return web.json_response(
                call.response, status=429, headers={"Retry-After": str(retry_after)}
            )
        try:
            token = auth.removeprefix("Bearer ").strip() if auth else None
            call.response = await self._dispatch(method, token, args)
        except SlackFail as fail:
            call.response = {"ok": False, "error": fail.error}
            if fail.problems:
                call.response["response_metadata"] = {"messages": list(fail.problems)}
        await self._record(call)
        return web.json_response(call.response)

    async def _dispatch(
        self, method: str, token: str | None, args: dict[str, Any]
    ) -> dict[str, Any]:
        if not token:
            raise SlackFail("not_authed")
        if method == "apps.connections.open":
            if token.startswith("xoxb-"):
                raise SlackFail("not_allowed_token_type")
            if token != self._app_token:
                raise SlackFail("invalid_auth")
            ticket = uuid.uuid4().hex
            ws_root = self._root.replace("http://", "ws://", 1)
            return {"ok": True, "url": f"{ws_root}/link/?ticket={ticket}&app_id=A0GEPETTO"}
        if token != self._bot_token:
            raise SlackFail("invalid_auth")
        handler = self._methods.get(method)
        if handler is None:
            raise SlackFail("unknown_method")
        needed = METHOD_SCOPES.get(method)
        if needed is not None and needed not in self.bot_scopes:
            raise SlackFail("missing_scope", (f"needed: {needed}",))
        return await handler(args)

    # -- Web API methods --------------------------------------------------------------------

    def _next_ts(self) -> str:
        # Slack ts values are epoch seconds with 6 decimals, unique per channel.
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    def _channel_id(self, args: dict[str, Any]) -> str:
        raw = args.get("channel")
        if not isinstance(raw, str) or not raw:
            raise SlackFail("channel_not_found")
        if raw[0] in "CGD" and raw[1:].isalnum() and raw.isupper():
            return raw
        if raw[0] == "U" and raw in self.users:
            return "D" + raw[1:]  # posting to a user id lands in the DM with them
        name = raw.removeprefix("#")
        for cid, cname in self.channels.items():
            if cname == name:
                return cid
        raise SlackFail("channel_not_found")

    @staticmethod
    def _judge(args: dict[str, Any]) -> None:
        verdict = check_message(args.get("text"), args.get("blocks"))
        if verdict.error is not None:
            raise SlackFail(verdict.error, verdict.problems)

    def _message(self, args: dict[str, Any], ts: str) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "team": self.team_id,
            "ts": ts,
            "text": args.get("text") or "",
        }
        if args.get("blocks"):
            msg["blocks"] = args["blocks"]
        if args.get("thread_ts"):
            msg["thread_ts"] = args["thread_ts"]
        return msg

    async def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://gepetto-test.slack.com/",
            "team": "gepetto-test",
            "user": "gepetto",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    async def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(args)
        self._judge(args)
        ts = self._next_ts()
        message = self._message(args, ts)
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    async def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        self._channel_id(args)
        if args.get("user") not in self.users:
            raise SlackFail("user_not_in_channel")
        self._judge(args)
        return {"ok": True, "message_ts": self._next_ts()}

    def _existing(self, args: dict[str, Any]) -> tuple[str, str]:
        channel = self._channel_id(args)
        ts = str(args.get("ts", ""))
        if (channel, ts) not in self.messages:
            raise SlackFail("message_not_found")
        return channel, ts

    async def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._existing(args)
        self._judge(args)
        message = self._message(args, ts)
        self.messages[(channel, ts)] = message
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message["text"],
            "message": message,
        }

    async def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._existing(args)
        del self.messages[(channel, ts)]
        return {"ok": True, "channel": channel, "ts": ts}

    async def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(args)
        name = self.channels.get(channel, channel.lower())
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": name,
                "is_channel": True,
                "is_private": channel.startswith("G"),
                "is_im": channel.startswith("D"),
                "is_member": True,
            },
        }

    async def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup"))
        if group not in self.usergroups:
            raise SlackFail("no_such_subteam")
        return {"ok": True, "users": list(self.usergroups[group])}

    async def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = str(args.get("user"))
        if user_id not in self.users:
            raise SlackFail("user_not_found")
        info = self.users[user_id]
        return {
            "ok": True,
            "user": {
                "id": user_id,
                "team_id": self.team_id,
                "deleted": False,
                "is_bot": False,
                "tz": "Etc/UTC",
                **info,
                "profile": {
                    "real_name": info.get("real_name", ""),
                    "display_name": info.get("name", ""),
                },
            },
        }

    async def _response_url_post(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        args = await read_call_args(request)
        call = RecordedCall("response_url", {**args, "response_id": rid}, time.monotonic())
        uses = self._response_urls.get(rid)
        if uses is None or uses >= RESPONSE_URL_USES:
            call.status, call.response = 404, {"ok": False, "error": "expired_url"}
        else:
            self._response_urls[rid] = uses + 1
            verdict = check_message(args.get("text"), args.get("blocks"))
            if verdict.error is None:
                call.response = {"ok": True}
            else:
                call.status, call.response = 400, {"ok": False, "error": verdict.error}
        await self._record(call)
        return web.json_response(call.response, status=call.status)

    # -- Socket Mode ------------------------------------------------------------------------

    async def _socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()  # autoping answers the SDK's ping frames
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {"host": "sandbox", "approximate_connection_time": 3600},
                "connection_info": {"app_id": "A0GEPETTO"},
            }
        )
        assert self._socket_open is not None
        self._socket_open.set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                with contextlib.suppress(ValueError):
                    self._on_ack(json.loads(msg.data))
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self._socket_open.clear()
        return ws

    def _on_ack(self, data: Any) -> None:
        if not isinstance(data, dict) or "envelope_id" not in data:
            return
        pending = self._pending_acks.get(str(data["envelope_id"]))
        if pending is None or pending[1].done():
            return
        sent_at, future = pending
        payload = data.get("payload")
        ack = SocketAck(
            str(data["envelope_id"]),
            payload if isinstance(payload, dict) else None,
            time.monotonic() - sent_at,
        )
        self.socket_acks.append(ack)
        future.set_result(ack)
