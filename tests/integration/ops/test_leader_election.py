"""Leader election between real electors over HTTP against the cluster sandbox's Lease API.

The electors' monotonic clock is the test's: a lease expires, or a renewal deadline passes, when
the test moves the clock, never because a loaded machine ran an elector late. (How long each
takes is the pure rule's business: tests/unit/ops/test_leader_plan.py.) Bounds below are hang
detectors, not asserted timings."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from kubernetes_asyncio import client

from gepetto_core.adapters.kube_lease import KubeLease
from gepetto_core.config import load_settings
from gepetto_core.errors import ConfigError
from gepetto_core.ops.metrics import Metrics
from gepetto_core.services.leader import LeaderElector, elector_from_settings
from gepetto_sandbox.cluster import SandboxCluster

NAMESPACE = "chutes"
LEASE_SECONDS = 2
RENEW_SECONDS = 0.2
HANG = 60.0  # far above any wait here, however loaded the machine


class ManualClock:
    """A monotonic clock that only the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Candidate:
    """One elector with its run() task and a record of what its callbacks saw."""

    elector: LeaderElector
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    started: int = 0
    stopped: int = 0
    work_cancelled: int = 0
    working: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return self.elector.identity


async def until(check: Callable[[], bool], seconds: float) -> None:
    """Poll `check` until true; fail (not time) after `seconds`."""
    async with asyncio.timeout(seconds):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


@pytest.fixture
def lease_name() -> str:
    return f"gepetto-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def make_candidate(
    api: client.ApiClient, lease_name: str, clock: ManualClock
) -> AsyncIterator[Callable[..., Awaitable[Candidate]]]:
    made: list[Candidate] = []

    async def make(
        identity: str, work: Callable[[Candidate], Awaitable[None]] | None = None, **kw: object
    ) -> Candidate:
        candidate: Candidate

        async def started() -> None:
            candidate.started += 1
            candidate.working.set()
            try:
                if work is not None:
                    await work(candidate)
                else:
                    await asyncio.Event().wait()  # the loops: run until cancelled
            except asyncio.CancelledError:
                candidate.work_cancelled += 1
                raise
            finally:
                candidate.working.clear()

        async def stopped() -> None:
            candidate.stopped += 1

        elector = LeaderElector(
            KubeLease(api, NAMESPACE, lease_name), identity, LEASE_SECONDS, RENEW_SECONDS,
            started, stopped, clock=clock, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        candidate = Candidate(elector)
        candidate.task = asyncio.create_task(elector.run(candidate.stop))
        made.append(candidate)
        return candidate

    yield make
    for candidate in made:
        candidate.stop.set()
    for candidate in made:
        assert candidate.task is not None
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(candidate.task, HANG)


class OverlapWatch:
    """Samples the candidates' is_leader flags while active; remembers any moment of two."""

    def __init__(self, candidates: list[Candidate]) -> None:
        self.candidates = candidates
        self.max_leaders = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OverlapWatch:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        # A last look: the periodic samples can all fall outside a short leadership (seen in CI:
        # the standby took over and the test ended within one 5 ms sampling period).
        self._look()

    def _look(self) -> None:
        leaders = sum(c.elector.is_leader for c in self.candidates)
        self.max_leaders = max(self.max_leaders, leaders)

    async def _sample(self) -> None:
        while True:
            self._look()
            await asyncio.sleep(0.005)


async def read_lease(api: client.ApiClient, name: str) -> client.V1Lease:
    return await client.CoordinationV1Api(api).read_namespaced_lease(name, NAMESPACE)


async def lease_holder(api: client.ApiClient, name: str) -> str | None:
    holder: str | None = (await read_lease(api, name)).spec.holder_identity
    return holder


async def lease_version(api: client.ApiClient, name: str) -> str:
    version: str = (await read_lease(api, name)).metadata.resource_version
    return version


def seen_version(candidate: Candidate) -> str | None:
    """The resourceVersion of the lease record a standby last read."""
    observed = candidate.elector._observed  # what plan_step's expiry counts from
    return observed.resource_version if observed is not None else None


def lease_reads(sandbox: SandboxCluster, name: str) -> int:
    return sum(
        1 for r in sandbox.requests if r.method == "GET" and r.path.endswith(f"/leases/{name}")
    )


async def first_leader(a: Candidate, b: Candidate) -> tuple[Candidate, Candidate]:
    await until(lambda: a.elector.is_leader or b.elector.is_leader, HANG)
    return (a, b) if a.elector.is_leader else (b, a)


async def test_exactly_one_leads_and_the_standby_takes_over_a_graceful_stop(
    make_candidate: Callable[..., Awaitable[Candidate]], api: client.ApiClient, lease_name: str
) -> None:
    a, b = await make_candidate("replica-a"), await make_candidate("replica-b")
    async with OverlapWatch([a, b]) as watch:
        leader, standby = await first_leader(a, b)
        await until(lambda: leader.started == 1, HANG)
        # Several renew periods pass: the leader keeps the lease, the standby never starts.
        for _ in range(5):
            await asyncio.sleep(RENEW_SECONDS)
            assert await lease_holder(api, lease_name) == leader.name
        assert standby.started == 0 and not standby.elector.is_leader
        assert standby.elector.observed_holder == leader.name

        leader.stop.set()
        assert leader.task is not None
        await asyncio.wait_for(leader.task, HANG)
        assert (leader.work_cancelled, leader.stopped) == (1, 1)
        assert not leader.elector.is_leader
        # The lease was released, so the standby does not wait for it to expire (the clock
        # stands still: it could not).
        await until(lambda: standby.elector.is_leader, HANG)
        await until(lambda: standby.started == 1, HANG)
        assert await lease_holder(api, lease_name) == standby.name
    assert watch.max_leaders == 1


async def test_a_killed_leader_is_replaced_after_its_lease_expires(
    make_candidate: Callable[..., Awaitable[Candidate]],
    api: client.ApiClient,
    sandbox: SandboxCluster,
    lease_name: str,
    clock: ManualClock,
) -> None:
    a, b = await make_candidate("replica-a"), await make_candidate("replica-b")
    async with OverlapWatch([a, b]) as watch:
        leader, standby = await first_leader(a, b)
        await until(lambda: leader.working.is_set(), HANG)

        assert leader.task is not None
        leader.task.cancel()  # a crash: no release
        await asyncio.gather(leader.task, return_exceptions=True)
        assert leader.work_cancelled == 1  # no orphaned loop tasks
        assert await lease_holder(api, lease_name) == leader.name  # not released

        # The standby waits while the clock stands still, however many retries it makes...
        async with asyncio.timeout(HANG):  # until it has read the record the leader left
            while not standby.elector.is_leader:
                if seen_version(standby) == await lease_version(api, lease_name):
                    break
                await asyncio.sleep(0.01)
        reads = lease_reads(sandbox, lease_name)
        await until(
            lambda: standby.elector.is_leader or lease_reads(sandbox, lease_name) >= reads + 3,
            HANG,
        )
        assert not standby.elector.is_leader, "took over before the lease expired"
        # ...and takes over once it has seen that record unchanged for the lease duration.
        clock.advance(LEASE_SECONDS)
        await until(lambda: standby.elector.is_leader, HANG)
        await until(lambda: standby.started == 1, HANG)
        assert await lease_holder(api, lease_name) == standby.name
    assert watch.max_leaders == 1


async def test_losing_the_lease_cancels_the_leaders_work(
    make_candidate: Callable[..., Awaitable[Candidate]], api: client.ApiClient, lease_name: str
) -> None:
    a = await make_candidate("replica-a")
    await until(lambda: a.working.is_set(), HANG)

    # Another holder writes itself in (as a replica with a newer view would).
    coordination = client.CoordinationV1Api(api)
    lease = await coordination.read_namespaced_lease(lease_name, NAMESPACE)
    lease.spec.holder_identity = "intruder"
    await coordination.replace_namespaced_lease(lease_name, NAMESPACE, lease)

    await until(lambda: not a.elector.is_leader, HANG)
    await until(lambda: a.stopped == 1, HANG)
    assert a.work_cancelled == 1 and not a.working.is_set()
    assert a.elector.observed_holder == "intruder"


async def test_a_leader_that_cannot_renew_steps_down(
    make_candidate: Callable[..., Awaitable[Candidate]],
    sandbox: SandboxCluster,
    lease_name: str,
    clock: ManualClock,
) -> None:
    metrics = Metrics()
    a = await make_candidate("replica-a", metrics=metrics)
    await until(lambda: a.working.is_set(), HANG)
    assert metrics.registry.get_sample_value("gepetto_leader") == 1

    sandbox.inject_api_error(f"/leases/{lease_name}$", method="PUT", status=500, times=None)
    try:
        # It gives up after renew_deadline (< the lease duration) without a successful renewal.
        clock.advance(a.elector.renew_deadline)
        await until(lambda: not a.elector.is_leader, HANG)
        # Stepping down flags first, then cancels the work and awaits it, then calls back.
        await until(lambda: a.stopped == 1, HANG)
        assert a.work_cancelled == 1
        assert metrics.registry.get_sample_value("gepetto_leader") == 0
    finally:
        sandbox.clear_faults()


async def test_leader_work_that_ends_releases_the_lease_and_campaigns_again(
    make_candidate: Callable[..., Awaitable[Candidate]], api: client.ApiClient, lease_name: str
) -> None:
    crash = asyncio.Event()

    async def crashing(candidate: Candidate) -> None:
        if candidate.started == 1:
            await crash.wait()
            raise RuntimeError("loop crashed")
        await asyncio.Event().wait()

    a = await make_candidate("replica-a", crashing)
    await until(lambda: a.working.is_set(), HANG)
    first = await read_lease(api, lease_name)
    assert first.spec.holder_identity == "replica-a"

    crash.set()
    await until(lambda: a.started == 2, HANG)
    assert a.stopped == 1
    # The lease was released (no holder) before it campaigned again, so a standby elsewhere
    # would not have had to wait for it to expire: it leads in a new term, taken from nobody
    # (a renewal would have kept the term; a takeover from a holder would count a transition).
    again = await read_lease(api, lease_name)
    assert again.spec.holder_identity == "replica-a"
    assert again.spec.acquire_time > first.spec.acquire_time
    assert again.spec.lease_transitions == first.spec.lease_transitions


async def test_elector_from_settings(api: client.ApiClient) -> None:
    async def loops() -> None:
        await asyncio.Event().wait()

    def open_lease(namespace: str, name: str) -> KubeLease:
        return KubeLease(api, namespace, name)

    assert elector_from_settings(load_settings({}), open_lease, "host-1", loops) is None
    on = {"GEPETTO_LEADER_ELECTION": "true", "GEPETTO_LEASE_IDENTITY": "pod-7"}
    elector = elector_from_settings(load_settings(on), open_lease, "host-1", loops)
    assert elector is not None
    assert (elector.identity, elector.lease.name, elector.lease.namespace) == (
        "pod-7",
        "gepetto-leader",
        "chutes",
    )
    assert (elector.lease_seconds, elector.renew_seconds) == (15, 2.0)
    too_slow = {**on, "GEPETTO_LEASE_RENEW_SECONDS": "12"}
    with pytest.raises(ConfigError, match="GEPETTO_LEASE_RENEW_SECONDS"):
        elector_from_settings(load_settings(too_slow), open_lease, "host-1", loops)
