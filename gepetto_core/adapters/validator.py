"""HTTP client for one validator's miner-facing API (`docs/protocol.md`).

One ``HttpValidatorApi`` per validator; all of them share the process's ``aiohttp.ClientSession``.
Every call is signed with the miner hotkey (purpose or body hash, as the route expects), has a
timeout, and fails only with the ``ValidatorError`` tree: no aiohttp or JSON error escapes.
Idempotent calls (GET, DELETE) are retried a bounded number of times with exponential back-off
when the validator is unavailable; calls that create something (launch config, legacy
announce/activate) are not, because a retry could create a second one.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, TypeAdapter, ValidationError

from gepetto_core.adapters.signing import Signer, signed_headers
from gepetto_core.errors import (
    NoCapacityError,
    ValidatorAuthError,
    ValidatorError,
    ValidatorNotFoundError,
    ValidatorUnavailableError,
)
from gepetto_core.models.validator import (
    ActiveInstance,
    ChuteMetrics,
    ChuteUtilization,
    LaunchConfig,
    RollingUpdate,
    StreamResult,
    ValidatorChute,
    ValidatorImage,
    ValidatorInstance,
    ValidatorJob,
    ValidatorNode,
    ValidatorServer,
)
from gepetto_core.ops.metrics import METRICS

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

# One stream line holds one object; chute `code` is at most 150 000 chars, JSON escaping can
# roughly double that. The official miner reads with an 8 MiB buffer; so do we.
MAX_LINE_BYTES = 8 * 1024 * 1024
_DETAIL_LIMIT = 300


class LineKind(enum.Enum):
    SKIP = "skip"
    ITEM = "item"
    NO_ITEMS = "no_items"
    BAD = "bad"


def classify_line(line: bytes) -> tuple[LineKind, bytes]:
    """Sort one stream line: ``data: {json}`` is an item, ``data: NO_ITEMS`` the explicit empty
    marker, blank lines (and SSE ``:`` comments) separate events; anything else is malformed."""
    stripped = line.strip()
    if not stripped or stripped.startswith(b":"):
        return LineKind.SKIP, b""
    if stripped.startswith(b"data: {"):
        return LineKind.ITEM, stripped[6:]
    if stripped == b"data: NO_ITEMS":
        return LineKind.NO_ITEMS, b""
    return LineKind.BAD, stripped[:60]


def error_for_status(status: int, detail: str, where: str) -> ValidatorError:
    """Map an HTTP error status to our error tree (423 is a normal 'no capacity', not alarming)."""
    message = f"{where}: HTTP {status}: {detail}" if detail else f"{where}: HTTP {status}"
    if status == 423:
        return NoCapacityError(message, status)
    if status == 404:
        return ValidatorNotFoundError(message, status)
    if status in (401, 403):
        return ValidatorAuthError(message, status)
    if status >= 500 or status == 429:
        return ValidatorUnavailableError(message, status)
    return ValidatorError(message, status)


def operation_name(method: str, path: str) -> str:
    """A metric label for a call: ids in the path become {} so the label set stays small."""
    parts = [p if p.replace("_", "").isalpha() else "{}" for p in path.strip("/").split("/")]
    return f"{method} /{'/'.join(parts)}"


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Delay before retry number ``attempt`` (1-based): base, 2*base, 4*base, ... capped."""
    return float(min(cap, base * (2 ** (attempt - 1))))


def compact_json(payload: Any) -> bytes:
    """The exact bytes we sign and send (compact, like the official miner's orjson dumps)."""
    return json.dumps(payload, separators=(",", ":")).encode()


def open_http_session() -> aiohttp.ClientSession:
    """The process's one HTTP session for the validator API and its socket.io feed."""
    return aiohttp.ClientSession()


class HttpValidatorApi:
    """The miner-side client of one validator."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        signer: Signer,
        base_url: str,
        validator_hotkey: str,
        *,
        timeout: float = 30.0,
        stream_timeout: float = 300.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._signer = signer
        self.base_url = base_url.rstrip("/")
        self.validator_hotkey = validator_hotkey
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._stream_timeout = aiohttp.ClientTimeout(total=stream_timeout, sock_read=read_timeout)
        self._max_attempts = max(1, max_attempts)
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._clock = clock

    def __repr__(self) -> str:
        return f"HttpValidatorApi({self.base_url!r}, validator={self.validator_hotkey!r})"

    # ---- /miner/* streams -----------------------------------------------------------------

    async def stream_chutes(self) -> StreamResult[ValidatorChute]:
        return await self._stream("/miner/chutes/", ValidatorChute)

    async def stream_images(self) -> StreamResult[ValidatorImage]:
        return await self._stream("/miner/images/", ValidatorImage)

    async def stream_nodes(self) -> StreamResult[ValidatorNode]:
        return await self._stream("/miner/nodes/", ValidatorNode)

    async def stream_instances(self) -> StreamResult[ValidatorInstance]:
        # explicit_null: an empty answer comes as NO_ITEMS, so "none" is told apart from "broken"
        return await self._stream(
            "/miner/instances/", ValidatorInstance, params={"explicit_null": "True"}
        )

    async def stream_metrics(self) -> StreamResult[ChuteMetrics]:
        return await self._stream("/miner/metrics/", ChuteMetrics)

    async def stream_jobs(self) -> StreamResult[ValidatorJob]:
        return await self._stream("/miner/jobs/", ValidatorJob)

    # ---- JSON endpoints -------------------------------------------------------------------

    async def get_chute(self, chute_id: str, version: str) -> ValidatorChute:
        data = await self._json("GET", f"/miner/chutes/{chute_id}/{version}", purpose="miner")
        return self._parse(ValidatorChute, data, "chute")

    async def active_instances(self) -> list[ActiveInstance]:
        data = await self._json("GET", "/miner/active_instances/", purpose="miner")
        return self._parse_list(ActiveInstance, data, "active instances")

    async def servers(self) -> list[ValidatorServer]:
        data = await self._json("GET", "/miner/servers/", purpose="miner")
        servers = data.get("servers", []) if isinstance(data, dict) else data
        return self._parse_list(ValidatorServer, servers, "servers")

    async def utilization(self) -> list[ChuteUtilization]:
        data = await self._json("GET", "/chutes/utilization", signed=False)
        return self._parse_list(ChuteUtilization, data, "utilization")

    async def rolling_updates(self) -> list[RollingUpdate]:
        data = await self._json("GET", "/chutes/rolling_updates", signed=False)
        return self._parse_list(RollingUpdate, data, "rolling updates")

    async def launch_config(self, chute_id: str, job_id: str | None = None) -> LaunchConfig:
        """Ask for a launch-config JWT; ``NoCapacityError`` (423) means: do not deploy now."""
        params = {"chute_id": chute_id}
        if job_id is not None:
            params["job_id"] = job_id
        data = await self._json(
            "GET", "/instances/launch_config", purpose="launch", params=params, idempotent=False
        )
        return self._parse(LaunchConfig, data, "launch config")

    async def delete_instance(self, chute_id: str, instance_id: str) -> bool:
        """Remove our instance; True if deleted now, False if the validator no longer had it
        (both mean success to an undeploy)."""
        return await self._delete(f"/instances/{chute_id}/{instance_id}", "instances")

    async def delete_server(self, server_id: str) -> bool:
        """Deregister our server and its GPUs (the multi-cluster layout's removal); True if
        deleted now, False if the validator no longer had it."""
        return await self._delete(f"/servers/{server_id}", "tee")

    async def delete_node(self, gpu_id: str) -> bool:
        """Deregister one of our GPUs (the single layout's removal, GPU by GPU); True if
        deleted now, False if the validator no longer had it."""
        return await self._delete(f"/nodes/{gpu_id}", "nodes")

    async def _delete(self, path: str, purpose: str) -> bool:
        try:
            await self._json("DELETE", path, purpose=purpose)
        except ValidatorNotFoundError:
            return False
        return True

    async def release_job(self, job_id: str) -> None:
        """Give a job we claimed back to the other miners."""
        await self._json("DELETE", f"/miner/jobs/{job_id}", purpose="miner")

    async def announce_instance(
        self, chute_id: str, node_ids: list[str], host: str, port: int
    ) -> ValidatorInstance:
        """[legacy, chutes < 0.3.0] create the instance ourselves (body-hash signed)."""
        body = compact_json({"node_ids": node_ids, "host": host, "port": port})
        data = await self._json("POST", f"/instances/{chute_id}/", body=body, idempotent=False)
        return self._parse(ValidatorInstance, data, "instance")

    async def activate_instance(self, chute_id: str, instance_id: str) -> ValidatorInstance:
        """[legacy, chutes < 0.3.0] mark our instance active (body-hash signed)."""
        body = compact_json({"active": True})
        data = await self._json(
            "PATCH", f"/instances/{chute_id}/{instance_id}", body=body, idempotent=False
        )
        return self._parse(ValidatorInstance, data, "instance")

    # ---- plumbing -------------------------------------------------------------------------

    def _headers(self, purpose: str | None, body: bytes | None, signed: bool) -> dict[str, str]:
        headers: dict[str, str] = {}
        if signed:
            headers.update(
                signed_headers(self._signer, purpose=purpose, body=body, clock=self._clock)
            )
        if body is not None:
            headers["Content-Type"] = "application/json"
        return headers

    async def _retrying(self, idempotent: bool, attempt_once: Callable[[], Awaitable[R]]) -> R:
        attempts = self._max_attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                return await attempt_once()
            except ValidatorUnavailableError as e:
                if attempt == attempts:
                    raise
                delay = backoff_delay(attempt, self._backoff_base, self._backoff_cap)
                log.info("%s (attempt %d/%d, retrying in %.2fs)", e, attempt, attempts, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _json(
        self,
        method: str,
        path: str,
        *,
        purpose: str | None = None,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        signed: bool = True,
        idempotent: bool = True,
    ) -> Any:
        where = f"{self.base_url} {method} {path}"

        async def once() -> Any:
            headers = self._headers(purpose, body, signed)
            try:
                async with self._session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    data=body,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as resp:
                    raw = await resp.read()
                    if resp.status >= 300:
                        raise error_for_status(resp.status, _detail(raw), where)
            except ValidatorError:
                raise
            except (TimeoutError, aiohttp.ClientError, HttpProcessingError) as e:
                raise _unavailable(e, where) from e
            try:
                return json.loads(raw) if raw else None
            except ValueError as e:
                raise ValidatorUnavailableError(f"{where}: response is not JSON") from e

        with METRICS.validator_request(operation_name(method, path)):
            return await self._retrying(idempotent, once)

    async def _stream(
        self, path: str, model: type[M], params: Mapping[str, str] | None = None
    ) -> StreamResult[M]:
        where = f"{self.base_url} GET {path}"

        async def once() -> StreamResult[M]:
            headers = self._headers("miner", None, True)
            items: list[M] = []
            saw_no_items = False
            try:
                async with self._session.get(
                    self.base_url + path,
                    params=params,
                    headers=headers,
                    timeout=self._stream_timeout,
                    allow_redirects=False,
                    read_bufsize=1024 * 1024,
                ) as resp:
                    if resp.status >= 300:
                        raise error_for_status(resp.status, _detail(await resp.read()), where)
                    while True:
                        line = await resp.content.readuntil(b"\n", max_size=MAX_LINE_BYTES)
                        if not line:
                            break
                        if not line.endswith(b"\n"):
                            raise ValidatorUnavailableError(f"{where}: stream cut mid-line")
                        kind, payload = classify_line(line)
                        if kind is LineKind.ITEM:
                            items.append(_parse_item(model, payload, where))
                        elif kind is LineKind.NO_ITEMS:
                            saw_no_items = True
                        elif kind is LineKind.BAD:
                            raise ValidatorUnavailableError(
                                f"{where}: unexpected stream line {payload!r}"
                            )
            except ValidatorError:
                raise
            except (TimeoutError, aiohttp.ClientError, HttpProcessingError) as e:
                raise _unavailable(e, where) from e
            return StreamResult.of(tuple(items), saw_no_items)

        with METRICS.validator_request(operation_name("GET", path)):
            return await self._retrying(True, once)

    @staticmethod
    def _parse(model: type[M], data: Any, what: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as e:
            raise ValidatorUnavailableError(f"malformed {what}: {_first_error(e)}") from e

    @staticmethod
    def _parse_list(model: type[M], data: Any, what: str) -> list[M]:
        try:
            return TypeAdapter(list[model]).validate_python(data)  # type: ignore[valid-type]
        except ValidationError as e:
            raise ValidatorUnavailableError(f"malformed {what}: {_first_error(e)}") from e


def _parse_item(model: type[M], payload: bytes, where: str) -> M:
    try:
        return model.model_validate_json(payload)
    except ValidationError as e:
        raise ValidatorUnavailableError(f"{where}: bad stream item: {_first_error(e)}") from e


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first.get("loc", ()))
    return f"{loc}: {first.get('msg', 'invalid')}" if loc else str(first.get("msg", "invalid"))


def _detail(raw: bytes) -> str:
    """The validator's error text: ``{"detail": "..."}`` from FastAPI, else the raw start."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw[:_DETAIL_LIMIT].decode("utf-8", "replace")
    detail = body.get("detail") if isinstance(body, dict) else body
    text = detail if isinstance(detail, str) else json.dumps(detail)
    return text[:_DETAIL_LIMIT]


def _unavailable(error: BaseException, where: str) -> ValidatorUnavailableError:
    if isinstance(error, TimeoutError):
        return ValidatorUnavailableError(f"{where}: timed out")
    if isinstance(error, aiohttp.ClientPayloadError):
        return ValidatorUnavailableError(f"{where}: response cut short")
    if isinstance(error, aiohttp.ClientConnectionError):
        return ValidatorUnavailableError(f"{where}: connection failed ({type(error).__name__})")
    return ValidatorUnavailableError(f"{where}: {type(error).__name__}")
