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


def add_control_routes(app: web.Application, sandbox: SandboxValidator) -> None:
    r = app.router
    s = sandbox

    async def load_catalog(request: web.Request) -> web.StreamResponse:
        args = await _body(request)
        loaded = s.load_generated(int(args.get("chutes", 100)), seed=int(args.get("seed", 0)))
        return _reply(loaded)

    async def state(request: web.Request) -> web.StreamResponse:
        return _reply(s.summary())

    async def miners(request: web.Request) -> web.StreamResponse:
        s.register_miner(str((await _body(request))["hotkey"]))
        return _reply({"ok": True})

    async def servers(request: web.Request) -> web.StreamResponse:
        a = await _body(request)
        server = s.add_server(
            str(a["hotkey"]),
            name=str(a["name"]),
            gpu_identifier=str(a["gpu_identifier"]),
            gpu_count=int(a["gpu_count"]),
            host=str(a["host"]),
            server_id=a.get("server_id"),
            is_tee=bool(a.get("is_tee", False)),
        )
        return _reply(server, 201)

    async def target(request: web.Request) -> web.StreamResponse:
        s.set_target(request.match_info["chute_id"], int((await _body(request))["target"]))
        return _reply({"ok": True})

    async def claim(request: web.Request) -> web.StreamResponse:
        a = await _body(request)
        result = s.claim(
            request.match_info["config_id"], list(a["gpus"]), str(a["host"]), int(a["port"])
        )
        return _reply(result)

    async def verify(request: web.Request) -> web.StreamResponse:
        return _reply(s.verify(request.match_info["config_id"]))

    async def activate(request: web.Request) -> web.StreamResponse:
        return _reply(s.activate(request.match_info["config_id"]))

    async def delete_instance(request: web.Request) -> web.StreamResponse:
        s.delete_instance(request.match_info["instance_id"])
        return _reply({"deleted": True})

    async def set_fault(request: web.Request) -> web.StreamResponse:
        s.inject_fault(request.match_info["route"], Fault.from_json(await _body(request)))
        return _reply({"ok": True})

    async def clear_faults(request: web.Request) -> web.StreamResponse:
        s.clear_faults(request.match_info.get("route"))
        return _reply({"ok": True})

    async def create_job(request: web.Request) -> web.StreamResponse:
        a = await _body(request)
        job = s.create_job(
            str(a["chute_id"]),
            method=str(a.get("method", "run")),
            disk_gb=int(a.get("disk_gb", 10)),
        )
        return _reply(job, 201)

    async def finish_job(request: web.Request) -> web.StreamResponse:
        s.finish_job(request.match_info["job_id"])
        return _reply({"ok": True})

    async def bounty(request: web.Request) -> web.StreamResponse:
        return _reply({"bounty": s.create_bounty(request.match_info["chute_id"])})

    async def update_chute(request: web.Request) -> web.StreamResponse:
        return _reply({"version": s.update_chute(request.match_info["chute_id"])})

    async def delete_chute(request: web.Request) -> web.StreamResponse:
        s.delete_chute(request.match_info["chute_id"])
        return _reply({"ok": True})

    async def finish_rolling(request: web.Request) -> web.StreamResponse:
        s.finish_rolling_update(request.match_info["chute_id"])
        return _reply({"ok": True})

    async def broadcast(request: web.Request) -> web.StreamResponse:
        a = await _body(request)
        s.broadcast(
            str(a["reason"]), dict(a.get("data", {})), recipients=a.get("filter_recipients")
        )
        return _reply({"ok": True})

    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/_sandbox/catalog", load_catalog),
        ("GET", "/_sandbox/state", state),
        ("POST", "/_sandbox/miners", miners),
        ("POST", "/_sandbox/servers", servers),
        ("PUT", "/_sandbox/targets/{chute_id}", target),
        ("POST", "/_sandbox/launch_configs/{config_id}/claim", claim),
        ("POST", "/_sandbox/launch_configs/{config_id}/verify", verify),
        ("POST", "/_sandbox/launch_configs/{config_id}/activate", activate),
        ("DELETE", "/_sandbox/instances/{instance_id}", delete_instance),
        ("POST", "/_sandbox/faults/{route}", set_fault),
        ("DELETE", "/_sandbox/faults", clear_faults),
        ("DELETE", "/_sandbox/faults/{route}", clear_faults),
        ("POST", "/_sandbox/jobs", create_job),
        ("POST", "/_sandbox/jobs/{job_id}/finish", finish_job),
        ("POST", "/_sandbox/bounties/{chute_id}", bounty),
        ("POST", "/_sandbox/chutes/{chute_id}/update", update_chute),
        ("DELETE", "/_sandbox/chutes/{chute_id}", delete_chute),
        ("POST", "/_sandbox/rolling_updates/{chute_id}/finish", finish_rolling),
        ("POST", "/_sandbox/broadcast", broadcast),
    ]
    for method, path, handler in routes:
        r.add_route(method, path, _guard(handler))
