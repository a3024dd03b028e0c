"""The sandbox validator's miner-facing HTTP routes (`docs/protocol.md`): signature
checks with the validator's rules and texts, the ``data:`` stream format, launch configs and the
pod's claim/prove/activate calls, and the injectable faults."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gepetto_sandbox.validator import operations, views
from gepetto_sandbox.validator.auth import AuthFailure, authenticate, check_blacklist
from gepetto_sandbox.validator.faults import Fault, FaultBook
from gepetto_sandbox.validator.gpus import GPU_TYPES
from gepetto_sandbox.validator.world import Rejected, ValidatorWorld

_FLUSH_BYTES = 256 * 1024
_TRUTHY = {"true", "1", "yes", "on"}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(value), status=status, content_type="application/json")


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """FastAPI-style errors: ``{"detail": "..."}`` with the status."""
    try:
        return await handler(request)
    except (AuthFailure, Rejected) as e:
        return json_response({"detail": e.detail}, status=e.status)


class MinerApi:
    """Route handlers bound to one world."""

    def __init__(self, world: ValidatorWorld, faults: FaultBook) -> None:
        self.world = world
        self.faults = faults
        self.requests: deque[RecordedRequest] = deque(maxlen=500)
        self.check_signatures = True

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/ping", self.ping)
        r.add_get("/miner/chutes/", self.stream_route("chutes", lambda h: views.chutes(self.world)))
        r.add_get(
            "/miner/images/", self.stream_route("images", lambda h: self.world.images.values())
        )
        r.add_get("/miner/nodes/", self.stream_route("nodes", lambda h: views.nodes(self.world, h)))
        r.add_get(
            "/miner/instances/",
            self.stream_route("instances", lambda h: views.instances(self.world, h)),
        )
        r.add_get(
            "/miner/metrics/", self.stream_route("metrics", lambda h: views.metrics(self.world))
        )
        r.add_get(
            "/miner/jobs/", self.stream_route("jobs", lambda h: views.unclaimed_jobs(self.world))
        )
        r.add_get("/miner/chutes/{chute_id}/{version}", self.get_chute)
        r.add_delete("/miner/jobs/{job_id}", self.release_job)
        r.add_get("/miner/active_instances/", self.active_instances)
        r.add_get("/miner/servers/", self.servers)
        r.add_get("/chutes/utilization", self.utilization)
        r.add_get("/chutes/rolling_updates", self.rolling_updates)
        r.add_get("/bounties/", self.bounties)
        r.add_get("/nodes/supported", self.supported_gpus)
        r.add_get("/instances/launch_config", self.launch_config)
        r.add_post("/instances/launch_config/{config_id}", self.pod_claim)
        r.add_put("/instances/launch_config/{config_id}", self.pod_verify)
        r.add_get("/instances/launch_config/{config_id}/activate", self.pod_activate)
        r.add_delete("/instances/{chute_id}/{instance_id}", self.delete_instance)
        r.add_delete("/nodes/{node_id}", self.delete_node)
        r.add_delete("/servers/{server_id}", self.delete_server)
        r.add_post("/instances/{chute_id}/", self.legacy_announce)
        r.add_patch("/instances/{chute_id}/{instance_id}", self.legacy_activate)

    # ---- shared steps ------------------------------------------------------------------

    async def _record(self, request: web.Request) -> bytes:
        body = await request.read()
        self.requests.append(
            RecordedRequest(
                request.method, request.path, dict(request.query), dict(request.headers), body
            )
        )
        return body

    async def _fault(self, route: str, request: web.Request) -> Fault | None:
        fault = self.faults.take(route)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
            if request.transport is None or request.transport.is_closing():
                raise asyncio.CancelledError  # the client gave up waiting; nothing to answer
        if fault.status is not None:
            raise Rejected(fault.status, f"sandbox fault injected on {route}")
        return fault

    def _auth(
        self,
        request: web.Request,
        purpose: str | None,
        body: bytes | None = None,
        *,
        user_optional: bool = False,
    ) -> str | None:
        if not self.check_signatures:
            return request.headers.get("X-Chutes-Hotkey")
        return authenticate(
            request.headers,
            purpose=purpose,
            body=body,
            now=self.world.clock(),
            registered=self.world.metagraph.__contains__,
            user_optional=user_optional,
        )

    def _miner(self, request: web.Request, purpose: str | None, body: bytes | None = None) -> str:
        hotkey = self._auth(request, purpose, body)
        assert hotkey is not None
        return hotkey

    def _blacklist(self, hotkey: str | None) -> str:
        check_blacklist(
            hotkey,
            in_metagraph=self.world.metagraph.__contains__,
            blacklisted=self.world.blacklisted,
        )
        assert hotkey is not None
        return hotkey

    # ---- streams -----------------------------------------------------------------------

    def stream_route(
        self, route: str, rows: Callable[[str], Iterable[dict[str, Any]]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            await self._record(request)
            hotkey = self._miner(request, "miner")
            fault = await self._fault(route, request)
            explicit_null = request.query.get("explicit_null", "").lower() in _TRUTHY
            return await self._write_stream(request, list(rows(hotkey)), explicit_null, fault)

        return handler

    async def _write_stream(
        self,
        request: web.Request,
        rows: list[dict[str, Any]],
        explicit_null: bool,
        fault: Fault | None,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        buffer = bytearray()
        for index, row in enumerate(rows):
            if fault is not None and fault.bad_line_after == index:
                buffer += b"data: {this is not json\n\n"
            line = b"data: " + dumps(row) + b"\n\n"
            if fault is not None and fault.truncate_after == index:
                buffer += line[: max(1, len(line) // 2)]
                await resp.write(bytes(buffer))
                assert request.transport is not None
                request.transport.close()  # cut mid-line, no terminating chunk
                return resp
            buffer += line
            if len(buffer) >= _FLUSH_BYTES:
                await resp.write(bytes(buffer))
                buffer.clear()
        if not rows and explicit_null:
            buffer += b"data: NO_ITEMS\n"
        if buffer:
            await resp.write(bytes(buffer))
        await resp.write_eof()
        return resp

    # ---- JSON routes -----------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        return json_response({"message": "pong"})

    async def get_chute(self, request: web.Request) -> web.Response:
        await self._record(request)
        self._miner(request, "miner")
        await self._fault("chute", request)
        chute_id = request.match_info["chute_id"]
        chute = self.world.chutes.get(chute_id)
        if chute is None or chute["version"] != request.match_info["version"]:
            raise Rejected(404, f"chute_id='{chute_id}' not found")
        return json_response(views.chute_view(self.world, chute))

    async def release_job(self, request: web.Request) -> web.Response:
        await self._record(request)
        hotkey = self._miner(request, "miner")
        await self._fault("release_job", request)
        operations.release_job(self.world, hotkey, request.match_info["job_id"])
        return json_response(None)

    async def active_instances(self, request: web.Request) -> web.Response:
        await self._record(request)
        self._miner(request, "miner")
        await self._fault("active_instances", request)
        return json_response(views.active_instances(self.world))

    async def servers(self, request: web.Request) -> web.Response:
        await self._record(request)
        hotkey = self._miner(request, "miner")
        await self._fault("servers", request)
        return json_response(views.servers(self.world, hotkey))

    async def utilization(self, request: web.Request) -> web.Response:
        await self._fault("utilization", request)
        return json_response(views.utilization(self.world))

    async def rolling_updates(self, request: web.Request) -> web.Response:
        await self._fault("rolling_updates", request)
        return json_response(views.rolling_updates(self.world))

    async def bounties(self, request: web.Request) -> web.Response:
        await self._fault("bounties", request)
        return json_response(views.bounties(self.world))

    async def supported_gpus(self, request: web.Request) -> web.Response:
        return json_response(
            {
                g.short_id: {
                    "memory": g.memory_gb,
                    "hourly_rate": g.hourly_rate,
                    "model_name_check": g.model_name,
                }
                for g in GPU_TYPES.values()
            }
        )

    async def launch_config(self, request: web.Request) -> web.Response:
        await self._record(request)
        hotkey = self._blacklist(self._auth(request, "launch", user_optional=True))
        await self._fault("launch_config", request)
        chute_id = request.query.get("chute_id")
        if not chute_id:
            return json_response(
                {"detail": [{"loc": ["query", "chute_id"], "msg": "Field required"}]}, 422
            )
        issued = self.world.issue_launch_config(hotkey, chute_id, request.query.get("job_id"))
        return json_response(issued)

    async def delete_instance(self, request: web.Request) -> web.Response:
        await self._record(request)
        hotkey = self._blacklist(self._miner(request, "instances"))
        await self._fault("delete_instance", request)
        result = self.world.delete_instance(
            hotkey, request.match_info["chute_id"], request.match_info["instance_id"]
        )
        return json_response(result)

    async def delete_node(self, request: web.Request) -> web.Response:
        await self._record(request)
        hotkey = self._miner(request, "nodes")
        await self._fault("delete_node", request)
        return json_response(
            operations.delete_node(self.world, hotkey, request.match_info["node_id"])
        )

    async def delete_server(self, request: web.Request) -> web.Response:
        await self._record(request)
        hotkey = self._miner(request, "tee")
        await self._fault("delete_server", request)
        return json_response(
            operations.delete_server(self.world, hotkey, request.match_info["server_id"])
        )

    async def legacy_announce(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        hotkey = self._blacklist(self._miner(request, None, body))
        await self._fault("announce", request)
        args = _json_object(body)
        instance = self.world.announce(
            hotkey,
            request.match_info["chute_id"],
            list(args.get("node_ids", [])),
            str(args.get("host", "")),
            int(args.get("port", 0)),
        )
        return json_response(instance, status=202)

    async def legacy_activate(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        hotkey = self._blacklist(self._miner(request, None, body))
        await self._fault("activate", request)
        if _json_object(body) != {"active": True}:
            raise Rejected(400, 'Only {"active": true} is supported')
        instance = self.world.legacy_activate(
            hotkey, request.match_info["chute_id"], request.match_info["instance_id"]
        )
        return json_response(instance)

    # ---- the pod's launch-config calls (JWT auth) ------------------------------------------

    async def pod_claim(self, request: web.Request) -> web.Response:
        config_id = request.match_info["config_id"]
        self.world.config_from_token(request.headers.get("Authorization"), config_id)
        args = _json_object(await request.read())
        gpus = [str(g["uuid"]) for g in args.get("gpus", []) if isinstance(g, dict)]
        return json_response(
            self.world.claim(
                config_id, gpus, str(args.get("host", "")), list(args.get("port_mappings", []))
            )
        )

    async def pod_verify(self, request: web.Request) -> web.Response:
        config_id = request.match_info["config_id"]
        config = self.world.config_from_token(request.headers.get("Authorization"), config_id)
        args = _json_object(await request.read())
        expected = f"secret is {config_id} {config['seed']}"
        if args.get("response") != expected:
            instance_id = config["instance_id"]
            if instance_id in self.world.instances:
                self.world.remove_instance(instance_id, reason="bad proof")
            config["failed_at"] = self.world.now()
            raise Rejected(403, "Failed to verify the proof of work")
        return json_response(self.world.verify(config_id))

    async def pod_activate(self, request: web.Request) -> web.Response:
        config_id = request.match_info["config_id"]
        self.world.config_from_token(request.headers.get("Authorization"), config_id)
        return json_response(self.world.activate(config_id))


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body) if body else {}
    except ValueError as e:
        raise Rejected(400, "Request body is not valid JSON") from e
    if not isinstance(value, dict):
        raise Rejected(422, "Request body must be an object")
    return value
