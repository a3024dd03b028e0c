"""HTTP control surface of the sandbox validator, under ``/_sandbox/...`` (for the demo and for
anything that drives the sandbox from another process). Mirrors ``SandboxValidator``'s methods."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gepetto_sandbox.validator.faults import Fault

if TYPE_CHECKING:
    from gepetto_sandbox.validator.server import SandboxValidator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _reply(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status)


def _guard(handler: Handler) -> Handler:
    """Control calls answer 404 for unknown ids and 400 for bad arguments, never 500."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except KeyError as e:
            return _reply({"detail": f"not found: {e}"}, 404)
        except (ValueError, TypeError) as e:
            return _reply({"detail": str(e)}, 400)

    return wrapped


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    value = json.loads(raw) if raw else {}
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


class _Control:
    """One handler per control route, all on one sandbox."""

    def __init__(self, sandbox: SandboxValidator) -> None:
        self._sandbox = sandbox

    async def load_catalog(self, request: web.Request) -> web.StreamResponse:
        args = await _body(request)
        loaded = self._sandbox.load_generated(
            int(args.get("chutes", 100)), seed=int(args.get("seed", 0))
        )
        return _reply(loaded)

    async def state(self, request: web.Request) -> web.StreamResponse:
        return _reply(self._sandbox.summary())

    async def miners(self, request: web.Request) -> web.StreamResponse:
        self._sandbox.register_miner(str((await _body(request))["hotkey"]))
        return _reply({"ok": True})

    async def servers(self, request: web.Request) -> web.StreamResponse:
        a = await _body(request)
        server = self._sandbox.add_server(
            str(a["hotkey"]),
            name=str(a["name"]),
            gpu_identifier=str(a["gpu_identifier"]),
            gpu_count=int(a["gpu_count"]),
            host=str(a["host"]),
            server_id=a.get("server_id"),
            is_tee=bool(a.get("is_tee", False)),
        )
        return _reply(server, 201)

    async def target(self, request: web.Request) -> web.StreamResponse:
        self._sandbox.set_target(
            request.match_info["chute_id"], int((await _body(request))["target"])
        )
        return _reply({"ok": True})

    async def claim(self, request: web.Request) -> web.StreamResponse:
        a = await _body(request)
        result = self._sandbox.claim(
            request.match_info["config_id"], list(a["gpus"]), str(a["host"]), int(a["port"])
        )
        return _reply(result)

    async def verify(self, request: web.Request) -> web.StreamResponse:
        return _reply(self._sandbox.verify(request.match_info["config_id"]))

    async def activate(self, request: web.Request) -> web.StreamResponse:
        return _reply(self._sandbox.activate(request.match_info["config_id"]))

    async def delete_instance(self, request: web.Request) -> web.StreamResponse:
        self._sandbox.delete_instance(request.match_info["instance_id"])
        return _reply({"deleted": True})

    async def set_fault(self, request: web.Request) -> web.StreamResponse:
        self._sandbox.inject_fault(
            request.match_info["route"], Fault.from_json(await _body(request))
        )
        return _reply({"ok": True})

    async def clear_faults(self, request: web.Request) -> web.StreamResponse:
        self._sandbox.clear_faults(request.match_info.get("route"))
        return _reply({"ok": True})

    async def create_job(self, request: web.Request) -> web.StreamResponse:
        a = await _body(request)
        job = self._sandbox.create_job(
            str(a["chute_id"]),
            method=str(a.get("method", "run")),
            disk_gb=int(a.get("disk_gb", 10)),
        )
        return _reply(job, 201)

    async def finish_job(self, request: web.Request) -> web.StreamResponse:
        self._sandbox.finish_job(request.match_info["job_id"])
        return _reply({"ok": True})

    async def bounty(self, request: web.Request) -> web.StreamResponse:
        return _reply({"bounty": self._sandbox.create_bounty(request.match_info["chute_id"])})

    async def update_chute(self, request: web.Request) -> web.StreamResponse:
        return _reply({"version": self._sandbox.update_chute(request.match_info["chute_id"])})

    async def delete_chute(self, request: web.Request) -> web.StreamResponse:
        self._sandbox.delete_chute(request.match_info["chute_id"])
        return _reply({"ok": True})

    async def finish_rolling(self, request: web.Request) -> web.StreamResponse:
        self._sandbox.finish_rolling_update(request.match_info["chute_id"])
        return _reply({"ok": True})

    async def broadcast(self, request: web.Request) -> web.StreamResponse:
        a = await _body(request)
        self._sandbox.broadcast(
            str(a["reason"]), dict(a.get("data", {})), recipients=a.get("filter_recipients")
        )
        return _reply({"ok": True})


def add_control_routes(app: web.Application, sandbox: SandboxValidator) -> None:
    c = _Control(sandbox)
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/_sandbox/catalog", c.load_catalog),
        ("GET", "/_sandbox/state", c.state),
        ("POST", "/_sandbox/miners", c.miners),
        ("POST", "/_sandbox/servers", c.servers),
        ("PUT", "/_sandbox/targets/{chute_id}", c.target),
        ("POST", "/_sandbox/launch_configs/{config_id}/claim", c.claim),
        ("POST", "/_sandbox/launch_configs/{config_id}/verify", c.verify),
        ("POST", "/_sandbox/launch_configs/{config_id}/activate", c.activate),
        ("DELETE", "/_sandbox/instances/{instance_id}", c.delete_instance),
        ("POST", "/_sandbox/faults/{route}", c.set_fault),
        ("DELETE", "/_sandbox/faults", c.clear_faults),
        ("DELETE", "/_sandbox/faults/{route}", c.clear_faults),
        ("POST", "/_sandbox/jobs", c.create_job),
        ("POST", "/_sandbox/jobs/{job_id}/finish", c.finish_job),
        ("POST", "/_sandbox/bounties/{chute_id}", c.bounty),
        ("POST", "/_sandbox/chutes/{chute_id}/update", c.update_chute),
        ("DELETE", "/_sandbox/chutes/{chute_id}", c.delete_chute),
        ("POST", "/_sandbox/rolling_updates/{chute_id}/finish", c.finish_rolling),
        ("POST", "/_sandbox/broadcast", c.broadcast),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _guard(handler))
