"""The operations HTTP server: `/healthz`, `/readyz` and Prometheus `/metrics`.

    server = OpsServer(
        HealthSources(
            ping_database=lambda: pool.fetchval("SELECT 1"),
            leader=lambda: elector.is_leader,        # or: lambda: None without election
            loops=lambda: LoopStatus(running_since=..., last_sync=...),
        ),
        host=settings.http_host, port=settings.http_port,
    )
    server.app.router.add_post("/slack/events", ...)   # optional: other routes, before start()
    await server.start()
    ...
    await server.stop()

Bodies are JSON; the status code carries the verdict (200 or 503), which is all the kubelet reads.
Error details in bodies pass through the log redactor's patterns: a database error must not be
able to put a password on an unauthenticated endpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import SecretStr

from gepetto_core.config import Settings
from gepetto_core.ops.health import LoopMonitor, LoopStatus, Verdict, judge_readiness
from gepetto_core.ops.logging import Redactor, secret_values
from gepetto_core.ops.metrics import CONTENT_TYPE_LATEST, METRICS, Metrics

DATABASE_TIMEOUT_SECONDS = 2.0


def _no_election() -> bool | None:
    return None


def _no_loops() -> LoopStatus:
    return LoopStatus()


@dataclass
class HealthSources:
    """Where readiness looks. Every callable is cheap except `ping_database` (one round trip).

    leader: True/False under election, None without. loops: the background loops' status, on
    the server's `clock` (default wall time, as SyncService stamps its fetches)."""

    ping_database: Callable[[], Awaitable[object]] | None = None
    leader: Callable[[], bool | None] = _no_election
    loops: Callable[[], LoopStatus] = _no_loops
    secrets: list[str | SecretStr] = field(default_factory=list)  # redacted from bodies


class OpsServer:
    def __init__(
        self,
        sources: HealthSources,
        *,
        host: str = "0.0.0.0",
        port: int = 8080,
        metrics: Metrics = METRICS,
        max_sync_age: float = 300.0,
        max_loop_lag: float = 5.0,
        heartbeat_interval: float = 1.0,
        database_timeout: float = DATABASE_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sources = sources
        self.metrics = metrics
        self.monitor = LoopMonitor(interval=heartbeat_interval, metrics=metrics)
        self._host, self._port = host, port
        self._max_sync_age = max_sync_age
        self._max_loop_lag = max_loop_lag
        self._database_timeout = database_timeout
        self._clock = clock
        self._redact = Redactor(sources.secrets)
        self._runner: web.AppRunner | None = None
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0)."""
        if self._runner is None or not self._runner.addresses:
            return self._port
        return int(self._runner.addresses[0][1])

    async def start(self) -> str:
        self.monitor.start()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        return f"http://{self._host}:{self.port}"

    async def stop(self) -> None:
        await self.monitor.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- handlers ------------------------------------------------------------------------
    async def _healthz(self, request: web.Request) -> web.Response:
        verdict = self.monitor.verdict(self._max_loop_lag)
        return _verdict_response(verdict, {"alive": verdict.ok})

    async def _readyz(self, request: web.Request) -> web.Response:
        verdict = await self.readiness()
        return _verdict_response(verdict, {"ready": verdict.ok, "leader": self.sources.leader()})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def readiness(self) -> Verdict:
        return judge_readiness(
            now=self._clock(),
            database_error=await self._database_error(),
            leader=self.sources.leader(),
            loops=self.sources.loops(),
            max_sync_age=self._max_sync_age,
        )

    async def _database_error(self) -> str | None:
        ping = self.sources.ping_database
        if ping is None:
            return "no database configured"
        try:
            async with asyncio.timeout(self._database_timeout):
                await ping()
        except TimeoutError:
            return f"no answer within {self._database_timeout:g}s"
        except Exception as e:  # any failure means "not ready"; the reason goes in the body
            return self._redact(f"{type(e).__name__}: {e}")[:300]
        return None


def _verdict_response(verdict: Verdict, head: dict[str, object]) -> web.Response:
    return web.json_response(
        {**head, "checks": verdict.as_json()}, status=200 if verdict.ok else 503
    )


def ops_server_from_settings(
    settings: Settings, sources: HealthSources, *, metrics: Metrics = METRICS
) -> OpsServer:
    """The ops server on GEPETTO_HTTP_HOST/PORT with the configured thresholds; every
    configured secret is redacted from probe bodies."""
    sources.secrets = [*sources.secrets, *secret_values(settings)]
    return OpsServer(
        sources,
        host=settings.http_host,
        port=settings.http_port,
        metrics=metrics,
        max_sync_age=settings.ready_max_sync_age_seconds,
        max_loop_lag=settings.loop_lag_max_seconds,
    )
