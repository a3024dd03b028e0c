"""The chutes agents' HTTP API, as gepetto meets it: one loopback server for every member
cluster's agent, each under `/agents/{name}` (a server's `agent_api` is that base URL, and
upstream stores whatever base URL registration was given). Routes, with the official answers
(docs/multi-cluster.md#agents):

- `GET /ping`: `{"message": "pong"}`;
- `GET /monitor/health`: 503 when the agent is in `error`, else `{"status": "healthy", "cluster"}`;
- `GET /monitor/stop`, signed for purpose `monitoring` by the one hotkey the agent trusts (the
  miner's): the agent stops, unregisters its cluster at the monitor (which clears the cache)
  and forgets it; 409 when it has no monitor to stop (it lost its state, or never started).

Agents join when a `MonitoredClusters` starts them; a member without one answers as an agent
that never started. Every request is recorded (`requests`) for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from gepetto_sandbox.validator.auth import AuthFailure, authenticate

if TYPE_CHECKING:
    from gepetto_sandbox.multicluster.agent import SandboxAgent

MONITORING = "monitoring"
NO_CONTROL_PLANE = "No control plane client: the agent is not monitoring"


@dataclass(frozen=True)
class AgentRequest:
    cluster: str
    path: str
    status: int
    hotkey: str | None


class AgentFront:
    def __init__(
        self,
        members: Callable[[], set[str]],
        *,
        trusted_hotkey: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`members`: the clusters that have an agent pod; `trusted_hotkey`: the miner's (None:
        every signed request is refused)."""
        self._members = members
        self.trusted_hotkey = trusted_hotkey
        self._clock = clock
        self.agents: dict[str, SandboxAgent] = {}
        self.requests: list[AgentRequest] = []
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    def agent_api(self, name: str) -> str | None:
        return None if self.url is None else f"{self.url}/agents/{name}"

    async def start(self, host: str = "127.0.0.1") -> None:
        app = web.Application()
        app.router.add_get("/agents/{name}/ping", self._ping)
        app.router.add_get("/agents/{name}/monitor/health", self._health)
        app.router.add_get("/agents/{name}/monitor/stop", self._stop)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, 0).start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _answer(
        self, request: web.Request, status: int, body: dict[str, str], hotkey: str | None = None
    ) -> web.Response:
        name = request.match_info["name"]
        path = request.path.removeprefix(f"/agents/{name}")
        self.requests.append(AgentRequest(name, path, status, hotkey))
        return web.json_response(body, status=status)

    async def _ping(self, request: web.Request) -> web.Response:
        if request.match_info["name"] not in self._members():
            return self._answer(request, 404, {"detail": "Not Found"})
        return self._answer(request, 200, {"message": "pong"})

    async def _health(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._members():
            return self._answer(request, 404, {"detail": "Not Found"})
        agent = self.agents.get(name)
        if agent is not None and agent.state == "error":
            return self._answer(request, 503, {"detail": agent.error_message or "error"})
        return self._answer(request, 200, {"status": "healthy", "cluster": name})

    async def _stop(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._members():
            return self._answer(request, 404, {"detail": "Not Found"})
        try:
            hotkey = authenticate(
                request.headers,
                purpose=MONITORING,
                body=None,
                now=self._clock(),
                registered=lambda key: key == self.trusted_hotkey,
            )
        except AuthFailure as e:
            return self._answer(request, e.status, {"detail": e.detail})
        agent = self.agents.get(name)
        status = 409 if agent is None else await agent.stop()
        if status != 200:
            return self._answer(request, status, {"detail": NO_CONTROL_PLANE}, hotkey)
        return self._answer(request, 200, {"message": "Monitoring stopped"}, hotkey)
