"""Fixtures shared by every test: a real PostgreSQL server and a fresh database per test.

The server is `GEPETTO_TEST_POSTGRES` (default: the machine's 127.0.0.1:5432). When nothing
answers there, a private embedded server is started for the session instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gepetto_core.adapters.embedded_pg import EmbeddedPostgres
from gepetto_core.adapters.pg import create_pool
from gepetto_core.adapters.pg_migrations import upgrade

DEFAULT_TEST_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _server_answers(dsn: str) -> bool:
    import asyncio

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _service_folder() -> Path:
    """A folder for a server that runs as another system user (the embedded PostgreSQL, when
    we are root): outside pytest's own temporary root, which every pytest session starting on
    the machine makes private again (mode 0700), cutting that user off from its data mid-test
    when two suites run side by side."""
    return Path(tempfile.mkdtemp(prefix="gepetto-test-"))


@pytest.fixture
def service_tmp_path() -> Iterator[Path]:
    """Like `tmp_path`, for the data of a server run as another user (see `_service_folder`)."""
    path = _service_folder()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN of a PostgreSQL server's maintenance database."""
    dsn = os.environ.get("GEPETTO_TEST_POSTGRES", DEFAULT_TEST_SERVER)
    if _server_answers(dsn):
        yield dsn
        return
    folder = _service_folder()
    embedded = EmbeddedPostgres(folder / "data", database="postgres")
    embedded.start()
    try:
        yield embedded.dsn
    finally:
        embedded.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _with_database(server_dsn: str, database: str) -> str:
    base, _, _ = server_dsn.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture
async def fresh_db(pg_server: str) -> AsyncIterator[str]:
    """DSN of a new, empty database, dropped after the test."""
    name = f"gepetto_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_database(pg_server, name)
    finally:
        admin = await asyncpg.connect(pg_server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def pool(fresh_db: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database with every migration applied."""
    pool = await create_pool(fresh_db, max_size=20)
    async with pool.acquire() as conn:
        await upgrade(conn)
    try:
        yield pool
    finally:
        await pool.close()


# --------------------------------------------------------------------------- realkube tier
# A real kube-apiserver, etcd and kube-controller-manager (gepetto_sandbox/control_plane), built
# once per machine by `scripts/control-plane build` (`make test` and .ci/run do it). Where it
# cannot be built the tier is skipped with a loud notice at the end of the run; under CI=true
# that is a failure instead.

REALKUBE_FLEET_SEED = 7
_realkube_skip_reason: list[str] = []


def _realkube_unavailable() -> str | None:
    from gepetto_sandbox.control_plane import cached, why_unbuildable

    if os.environ.get("GEPETTO_REALKUBE") == "skip":
        return "GEPETTO_REALKUBE=skip"
    if cached() is not None:
        return None
    reason = why_unbuildable()
    return reason or "not built yet: run `scripts/control-plane build` (about 15 min on 2 cores)"


@pytest.fixture(scope="session")
def realkube_binaries() -> object:
    """The control plane's cached build; skips the test (fails it under CI=true) when there is
    none. Every fixture starting a real control plane asks for this first."""
    from gepetto_sandbox.control_plane import cached

    reason = _realkube_unavailable()
    if reason is not None:
        message = f"the real Kubernetes tier (realkube) cannot run: {reason}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true makes this a failure)", pytrace=False)
        _realkube_skip_reason.append(message)
        pytest.skip(message)
    binaries = cached()
    assert binaries is not None
    return binaries


@pytest.fixture(scope="session")
async def real_cluster(
    realkube_binaries: Any, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[object]:
    """The real control plane with the fake kubelet playing the sandbox fixture's fleet."""
    from gepetto_sandbox.cluster import PodTimings, build_fleet
    from gepetto_sandbox.control_plane import RealCluster

    cluster = RealCluster(
        realkube_binaries,
        Path(tmp_path_factory.mktemp("control-plane")),
        nodes=build_fleet(seed=REALKUBE_FLEET_SEED, count=8, tee_every=4),
        timings=PodTimings(start_seconds=0.02, ready_seconds=0.02, termination_seconds=0.05),
    )
    try:
        await cluster.start()
    except BaseException:
        await cluster.stop()
        raise
    yield cluster
    await cluster.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _realkube_skip_reason:
        terminalreporter.section("REAL KUBERNETES TIER SKIPPED", sep="!", red=True, bold=True)
        terminalreporter.write_line(_realkube_skip_reason[0], red=True, bold=True)
