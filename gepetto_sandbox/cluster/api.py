"""The HTTP face of the sandbox: routing of `/api/v1/...` and `/apis/G/V/...` paths, list and
watch streaming, server-side tables, Status errors, a request log and injected API faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gepetto_sandbox.cluster import fields, resources, tables
from gepetto_sandbox.cluster.core import ClusterCore
from gepetto_sandbox.cluster.resources import BY_PATH, ResourceType
from gepetto_sandbox.cluster.selectors import object_matcher
from gepetto_sandbox.cluster.store import Event, Obj, StatusError, Store

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.8",
    "compiler": "gc",
    "platform": "linux/amd64",
}

TRUE_VALUES = ("true", "True", "1")


@dataclass
class ApiFault:
    """An injected failure: requests whose method and path match get `delay` seconds of latency
    and then, when `status` is set, a Status error instead of the real answer."""

    path_pattern: str
    method: str | None = None
    status: int | None = 500
    times: int | None = 1  # None: until cleared
    delay: float = 0.0
    reason: str = "InternalError"

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(
            re.search(self.path_pattern, path)
        )


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: str
    status: int


@dataclass
class ApiState:
    """`tokens`: the bearer tokens the server accepts (None: no authentication, anything
    goes). `open` cleared: every new request waits until it is set again (a hung API server).
    `observers` see each request's record once it is answered."""

    core: ClusterCore
    faults: list[ApiFault] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    tokens: set[str] | None = None
    open: asyncio.Event = field(default_factory=asyncio.Event)
    observers: list[Callable[[RequestRecord], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.open.set()


UNAUTHORIZED = StatusError(401, "Unauthorized", "Unauthorized")


def _authenticated(state: ApiState, request: web.Request) -> bool:
    if state.tokens is None:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token.strip() in state.tokens


STATE_KEY = web.AppKey("state", ApiState)


def status_response(error: StatusError) -> web.Response:
    return web.json_response(error.status(), status=error.code)


@web.middleware
async def _faults_and_log(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    response: web.StreamResponse | None = None
    try:
        if not state.open.is_set():
            await state.open.wait()
        if not _authenticated(state, request):
            response = status_response(UNAUTHORIZED)
            return response
        for fault in list(state.faults):
            if not fault.matches(request.method, request.path):
                continue
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        state.faults.remove(fault)
                message = f"injected fault on {request.method} {request.path}"
                response = status_response(StatusError(fault.status, fault.reason, message))
                return response
        try:
            response = await handler(request)
        except StatusError as e:
            response = status_response(e)
        return response
    finally:
        code = response.status if response is not None else 500
        record = RequestRecord(request.method, request.path, request.query_string, code)
        state.requests.append(record)
        for observe in list(state.observers):
            observe(record)


def build_app(state: ApiState) -> web.Application:
    app = web.Application(middlewares=[_faults_and_log])
    app[STATE_KEY] = state
    for path in ("/version", "/version/"):
        app.router.add_get(path, _version)
    for path in ("/healthz", "/readyz", "/livez"):
        app.router.add_get(path, _healthz)
    for path in ("/api", "/api/"):
        app.router.add_get(path, _api_versions)
    for path in ("/apis", "/apis/"):
        app.router.add_get(path, _api_groups)
    app.router.add_get("/openapi/{rest:.*}", _no_openapi)
    app.router.add_route("*", "/api/{version}{rest:(/.*)?}", _core_group)
    app.router.add_route("*", "/apis/{group}{rest:(/.*)?}", _named_group)
    return app


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


async def _version(request: web.Request) -> web.Response:
    return _json(VERSION_INFO)


async def _api_versions(request: web.Request) -> web.Response:
    return _json(resources.api_versions())


async def _api_groups(request: web.Request) -> web.Response:
    return _json(resources.api_group_list())


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _no_openapi(request: web.Request) -> web.Response:
    # kubectl copes with a missing OpenAPI document for get/delete/create.
    raise StatusError(404, "NotFound", "the sandbox serves no OpenAPI document")


async def _core_group(request: web.Request) -> web.StreamResponse:
    version = request.match_info["version"]
    parts = [p for p in request.match_info["rest"].split("/") if p]
    return await _dispatch(request, "", version, parts)


async def _named_group(request: web.Request) -> web.StreamResponse:
    group = request.match_info["group"]
    parts = [p for p in request.match_info["rest"].split("/") if p]
    if not parts:
        found = resources.api_group(group)
        if found is None:
            raise StatusError(404, "NotFound", f"the server could not find group {group}")
        return _json(found)
    return await _dispatch(request, group, parts[0], parts[1:])


def _resolve(
    group: str, version: str, parts: list[str]
) -> tuple[ResourceType, str | None, str | None, str | None]:
    namespace: str | None = None
    if len(parts) >= 3 and parts[0] == "namespaces":
        candidate = BY_PATH.get((group, version, parts[2]))
        if candidate is not None and candidate.namespaced:
            namespace, parts = parts[1], parts[2:]
    rt = BY_PATH.get((group, version, parts[0]))
    if rt is None or len(parts) > 3:
        raise StatusError(404, "NotFound", "the server could not find the requested resource")
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    if sub is not None and sub not in rt.subresources:
        raise StatusError(404, "NotFound", "the server could not find the requested resource")
    return rt, namespace, name, sub


async def _dispatch(
    request: web.Request, group: str, version: str, parts: list[str]
) -> web.StreamResponse:
    if not parts:
        listing = resources.resource_list(group, version)
        if listing is None:
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        return _json(listing)
    core = request.app[STATE_KEY].core
    rt, namespace, name, sub = _resolve(group, version, parts)
    if name is None:
        return await _on_collection(request, core, rt, namespace)
    return await _on_object(request, core, rt, namespace or "", name, sub)


def _without_type(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


async def _on_collection(
    request: web.Request, core: ClusterCore, rt: ResourceType, namespace: str | None
) -> web.StreamResponse:
    """GET (list or watch), POST (create) or DELETE (deletecollection) on a resource type."""
    q = request.query
    method = request.method
    if method == "GET":
        if q.get("watch") in TRUE_VALUES:
            return await _watch(request, rt, namespace)
        items, rv = core.select(rt, namespace, q.get("labelSelector"), q.get("fieldSelector"))
        if tables.wants_table(request.headers.get("Accept", "")):
            return _json(tables.table(rt.plural, items, rv))
        return _json(
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.group_version,
                "metadata": {"resourceVersion": str(rv)},
                # A real list's items carry no kind or apiVersion (the list says them once).
                "items": [_without_type(item) for item in items],
            }
        )
    if method == "POST":
        body = await _body(request)
        if q.get("fieldValidation") == "Strict":
            fields.check_strict(rt, body)
        return _json(core.create(rt, namespace, body), status=201)
    if method == "DELETE":
        propagation, grace = _delete_options(q, await _optional_body(request))
        core.delete_collection(
            rt, namespace, q.get("labelSelector"), q.get("fieldSelector"), propagation, grace
        )
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
    raise StatusError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")


async def _on_object(
    request: web.Request, core: ClusterCore, rt: ResourceType, ns: str, name: str, sub: str | None
) -> web.StreamResponse:
    """GET, PUT, PATCH or DELETE on one object (or its subresource)."""
    q = request.query
    method = request.method
    if method == "GET":
        obj = core.get(rt, ns, name)
        if sub == "log":
            return web.Response(text=_pod_log(core, obj, q), content_type="text/plain")
        if tables.wants_table(request.headers.get("Accept", "")):
            return _json(tables.table(rt.plural, [obj], core.store.resource_version))
        return _json(obj)
    if sub == "log":
        raise StatusError(405, "MethodNotAllowed", "logs are read-only")
    if method == "PUT":
        body = await _body(request)
        if q.get("fieldValidation") == "Strict":
            fields.check_strict(rt, body)
        return _json(core.replace(rt, ns, name, body, sub))
    if method == "PATCH":
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        return _json(core.patch(rt, ns, name, await _body(request), content_type, sub))
    if method == "DELETE":
        propagation, grace = _delete_options(q, await _optional_body(request))
        current = core.get(rt, ns, name)
        remaining = core.delete(rt, ns, name, propagation, grace)
        if remaining is not None:
            return _json(remaining)
        meta = current["metadata"]
        return _json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": meta["uid"]},
            }
        )
    raise StatusError(405, "MethodNotAllowed", f"{method} is not allowed")


def _check_json_body(request: web.Request) -> None:
    content_type = request.headers.get("Content-Type", "application/json")
    if "protobuf" in content_type or "cbor" in content_type:
        # kubectl's typed generators (`create configmap`, `create job`) send protobuf, which
        # the sandbox cannot decode; say so plainly (`kubectl create -f` sends JSON).
        raise StatusError(
            415, "UnsupportedMediaType", f"the sandbox only speaks JSON, not {content_type}"
        )


async def _body(request: web.Request) -> Any:
    _check_json_body(request)
    raw = await request.read()
    try:
        text = raw.decode()
    except UnicodeDecodeError as e:
        raise StatusError(400, "BadRequest", "the request body is not UTF-8 JSON") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise StatusError(400, "BadRequest", f"the request body is not JSON: {e.msg}") from e


async def _optional_body(request: web.Request) -> dict[str, Any]:
    _check_json_body(request)
    text = (await request.read()).decode("utf-8", "replace")
    if not text.strip():
        return {}
    with contextlib.suppress(json.JSONDecodeError):
        body = json.loads(text)
        if isinstance(body, dict):
            return body
    return {}


def _delete_options(query: Any, body: dict[str, Any]) -> tuple[str | None, int | None]:
    propagation = query.get("propagationPolicy") or body.get("propagationPolicy")
    if propagation is None and "orphanDependents" in body:
        propagation = "Orphan" if body["orphanDependents"] else "Background"
    grace_raw = query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
    grace = int(grace_raw) if grace_raw is not None else None
    return propagation, grace


def _pod_log(core: ClusterCore, pod: Obj, query: Any) -> str:
    lines = core.controllers.logs.get(pod["metadata"]["uid"], [])
    tail = query.get("tailLines")
    if tail is not None:
        lines = lines[-int(tail) :] if int(tail) > 0 else []
    return "".join(f"{line}\n" for line in lines)


def _event_to_send(event: Event, matches: Callable[[Obj], bool]) -> str | None:
    """What a filtered watcher sees: an object that stops matching is DELETED for it."""
    if event.type == "ADDED":
        return "ADDED" if matches(event.obj) else None
    if event.type == "DELETED":
        return "DELETED" if matches(event.obj) else None
    now, before = matches(event.obj), event.previous is not None and matches(event.previous)
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    return "DELETED" if before else None


@dataclass
class _WatchStream:
    """One watch's chunked response: events as JSON lines, objects or table rows."""

    response: web.StreamResponse
    plural: str
    as_table: bool
    matches: Callable[[Obj], bool]

    async def send(self, kind: str, obj: Obj) -> None:
        shown = (
            tables.table(self.plural, [obj], int(obj["metadata"]["resourceVersion"]))
            if self.as_table
            else obj
        )
        await self.response.write(json.dumps({"type": kind, "object": shown}).encode() + b"\n")

    async def send_event(self, event: Event) -> None:
        kind = _event_to_send(event, self.matches)
        if kind:
            await self.send(kind, event.obj)


async def _watch(
    request: web.Request, rt: ResourceType, namespace: str | None
) -> web.StreamResponse:
    store = request.app[STATE_KEY].core.store
    q = request.query
    selector = object_matcher(q.get("labelSelector"), q.get("fieldSelector"))

    def matches(obj: Obj) -> bool:
        if namespace is not None and obj["metadata"].get("namespace") != namespace:
            return False
        return selector(obj)

    timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
    deadline = time.monotonic() + timeout if timeout else None
    queue = store.subscribe()
    floor = store.resource_version
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    as_table = tables.wants_table(request.headers.get("Accept", ""))
    stream = _WatchStream(response, rt.plural, as_table, matches)
    try:
        if await _replay(stream, store, rt, namespace, q.get("resourceVersion"), floor):
            await _follow(stream, queue, deadline, floor)
    except ConnectionResetError:
        pass
    finally:
        store.unsubscribe(queue)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def _replay(
    stream: _WatchStream,
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    since: str | None,
    floor: int,
) -> bool:
    """What the watch starts with: every object (no resourceVersion, or "0"), or the events
    after `since`. False when `since` is too old to resume (a 410 ERROR event was sent)."""
    if not since or since == "0":
        for obj in store.list(rt, namespace, stream.matches):
            await stream.send("ADDED", obj)
        return True
    try:
        start = int(since)
    except ValueError:
        start = -1
    if start < store.oldest_resumable_rv():
        expired = StatusError(410, "Expired", f"too old resource version: {since} ({floor})")
        await stream.response.write(
            json.dumps({"type": "ERROR", "object": expired.status()}).encode() + b"\n"
        )
        return False
    for event in store.events_since(start, stream.plural):
        await stream.send_event(event)
    return True


async def _follow(
    stream: _WatchStream, queue: asyncio.Queue[Event | None], deadline: float | None, floor: int
) -> None:
    """Live events after the watch started, until the deadline or the store shuts down."""
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            break
        try:
            queued = await asyncio.wait_for(queue.get(), remaining)
        except TimeoutError:
            break
        if queued is None:
            break
        if queued.rv <= floor or queued.plural != stream.plural:
            continue
        await stream.send_event(queued)
