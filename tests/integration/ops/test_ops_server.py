"""The ops server over real HTTP: probes against a real PostgreSQL, a really blocked event loop,
and a Prometheus scrape parsed with prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.settings import load_bot_settings
from gepetto_core.ops.health import LoopStatus
from gepetto_core.ops.http import HealthSources, OpsServer, ops_server_from_settings
from gepetto_core.ops.metrics import Metrics


@pytest.fixture
async def db_pool(pg_server: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_server, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def scrape(http: aiohttp.ClientSession, url: str) -> tuple[int, str, str]:
    async with http.get(url) as response:
        return response.status, await response.text(), response.headers["Content-Type"]


async def test_ready_with_a_database_and_a_fresh_sync(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    now = time.time()
    sources = HealthSources(
        ping_database=lambda: db_pool.fetchval("SELECT 1"),
        leader=lambda: True,
        loops=lambda: LoopStatus(running_since=now - 100, last_sync=now - 10),
    )
    async with OpsServer(sources, host="127.0.0.1", port=0, metrics=Metrics()) as server:
        base = f"http://127.0.0.1:{server.port}"
        status, body = await get(http, f"{base}/readyz")
        assert status == 200, body
        assert body["ready"] is True and body["leader"] is True
        assert body["checks"]["database"] == {"ok": True, "detail": "reachable"}
        assert body["checks"]["sync"]["ok"] is True

        status, body = await get(http, f"{base}/healthz")
        assert status == 200 and body["alive"] is True


async def test_unreachable_database_is_not_ready_and_the_reason_leaks_no_password(
    http: aiohttp.ClientSession,
) -> None:
    dsn = "postgresql://chutes:hunter2-secret@127.0.0.1:1/chutes"  # nothing listens on port 1

    async def ping() -> object:
        try:
            return await asyncpg.connect(dsn, timeout=2)
        except OSError as e:  # what a careless driver might say: echo the DSN
            raise ConnectionError(f"cannot reach {dsn}: {e}") from e

    async with OpsServer(HealthSources(ping_database=ping), host="127.0.0.1", port=0) as server:
        async with http.get(f"http://127.0.0.1:{server.port}/readyz") as response:
            text = await response.text()
            assert response.status == 503
        assert "hunter2-secret" not in text
        body = await response.json()
        assert body["checks"]["database"]["ok"] is False
        assert "ConnectionError" in body["checks"]["database"]["detail"]


async def test_a_hanging_database_is_not_ready(http: aiohttp.ClientSession) -> None:
    async def hang() -> object:
        await asyncio.Event().wait()
        return None

    sources = HealthSources(ping_database=hang)
    async with OpsServer(sources, host="127.0.0.1", port=0, database_timeout=0.2) as server:
        status, body = await get(http, f"http://127.0.0.1:{server.port}/readyz")
        assert status == 503
        assert "no answer" in body["checks"]["database"]["detail"]


async def test_a_stale_sync_makes_the_leader_unready_but_not_a_standby(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    now = time.time()
    leading = True
    sources = HealthSources(
        ping_database=lambda: db_pool.fetchval("SELECT 1"),
        leader=lambda: leading,
        loops=lambda: LoopStatus(running_since=now - 1000, last_sync=now - 400),
    )
    async with OpsServer(sources, host="127.0.0.1", port=0, max_sync_age=300) as server:
        url = f"http://127.0.0.1:{server.port}/readyz"
        status, body = await get(http, url)
        assert status == 503 and body["checks"]["sync"]["ok"] is False
        leading = False
        status, body = await get(http, url)
        assert status == 200 and body["leader"] is False


async def test_a_blocked_event_loop_fails_liveness_until_it_recovers(
    http: aiohttp.ClientSession,
) -> None:
    # Scales far above a loaded machine's stalls: a stall over `max_loop_lag` would fail the
    # first check, and a next beat due before the second request is answered would clear the
    # lag it reads. The block is what makes the lag, so it can be as long as it needs.
    server = OpsServer(
        HealthSources(), host="127.0.0.1", port=0, heartbeat_interval=0.5, max_loop_lag=1.0
    )
    async with server:
        url = f"http://127.0.0.1:{server.port}/healthz"
        status, _ = await get(http, url)
        assert status == 200
        await asyncio.sleep(0.1)  # let the heartbeat be pending while we block
        time.sleep(2.0)  # noqa: ASYNC251 - the point: block the loop as a buggy call would
        await asyncio.sleep(0)  # the overdue heartbeat runs first and records the lag
        status, body = await get(http, url)
        assert status == 503, body
        assert body["checks"]["event_loop"]["ok"] is False
        async with asyncio.timeout(60):  # a later, punctual beat clears it (a hang detector)
            while True:
                status, _ = await get(http, url)
                if status == 200:
                    break
                await asyncio.sleep(0.05)


async def test_metrics_scrape(http: aiohttp.ClientSession) -> None:
    metrics = Metrics()
    metrics.deploys.labels(outcome="started").inc(3)
    metrics.set_leader(True)
    with metrics.kube_call("list_namespaced_job"):
        pass
    with pytest.raises(TimeoutError), metrics.kube_call("create_namespaced_job"):
        raise TimeoutError

    async with OpsServer(HealthSources(), host="127.0.0.1", port=0, metrics=metrics) as server:
        status, text, content_type = await scrape(http, f"http://127.0.0.1:{server.port}/metrics")
    assert status == 200 and content_type.startswith("text/plain")

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("gepetto_deploys_total", (("outcome", "started"),))] == 3
    assert samples[("gepetto_leader", ())] == 1
    assert (
        samples[("gepetto_kube_request_seconds_count", (("operation", "list_namespaced_job"),))]
        == 1
    )
    errors = (("error", "TimeoutError"), ("operation", "create_namespaced_job"))
    assert samples[("gepetto_kube_errors_total", errors)] == 1


async def test_server_from_settings_redacts_configured_secrets(http: aiohttp.ClientSession) -> None:
    token = "xoxb-configured-token-9"
    password = "plain-db-password"
    settings = load_bot_settings(
        {
            "GEPETTO_HTTP_HOST": "127.0.0.1",
            "GEPETTO_HTTP_PORT": "0",
            "GEPETTO_SLACK_BOT_TOKEN": token,
            "POSTGRESQL": f"postgresql://chutes:{password}@db/chutes",
        }
    )

    async def ping() -> object:  # an error text that quotes configuration verbatim
        raise RuntimeError(f"cannot log in as chutes/{password} (token {token})")

    server = ops_server_from_settings(settings, HealthSources(ping_database=ping))
    async with server:
        status, text, _ = await scrape(http, f"http://127.0.0.1:{server.port}/readyz")
    assert status == 503
    assert password not in text and token not in text and "RuntimeError" in text
