"""Killing a gepetto process in-process, at an exact await point chosen by a seed.

Every adapter the doomed process uses is wrapped in `Wired`: each coroutine call passes the
tripwire before and after its I/O. At the seeded tick the process "dies": its database pool is
terminated, the cluster and the validator stop answering it, and from then on every adapter call
of that process raises `ProcessDied` (no rollback, no cleanup can reach anything). Calls other
tasks already had in flight may still land, as they would for a real SIGKILL.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.adapters.pg_state import PgState
from gepetto_core.scheduling.snapshot import Snapshot
from gepetto_core.services.autoscaler import Autoscaler
from gepetto_core.services.deployer import Deployer
from gepetto_core.services.planning_input import load_snapshot, plan_policy
from gepetto_core.services.reconcile_service import Reconciler
from gepetto_core.wiring import Runtime

from .world import ChaosWorld


class ProcessDied(Exception):
    """The process was killed at this point (not a GepettoError: nothing may catch it)."""


class Tripwire:
    def __init__(self, trip_at: int, on_trip: Callable[[], None]) -> None:
        self.trip_at = trip_at
        self.count = 0
        self.where: str | None = None
        self._on_trip = on_trip

    @property
    def tripped(self) -> bool:
        return self.where is not None

    def tick(self, where: str) -> None:
        if self.where is not None:
            raise ProcessDied(f"dead since {self.where}")
        self.count += 1
        if self.count >= self.trip_at:
            self.where = where
            self._on_trip()
            raise ProcessDied(where)


class Wired:
    """An adapter whose coroutine methods pass the tripwire before and after their I/O."""

    def __init__(self, target: Any, wire: Tripwire, name: str) -> None:
        self._target = target
        self._wire = wire
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if not inspect.iscoroutinefunction(value):
            return value
        wire, where = self._wire, f"{self._name}.{attr}"

        async def call(*args: Any, **kwargs: Any) -> Any:
            wire.tick(f"before {where}")
            result = await value(*args, **kwargs)
            wire.tick(f"after {where}")
            return result

        return call


class DoomedProcess:
    """The services of one gepetto process whose adapters are all behind one tripwire."""

    def __init__(self, world: ChaosWorld, rt: Runtime, trip_at: int, seed: int) -> None:
        def die() -> None:
            rt.pool.terminate()
            world.sever()

        self.rt = rt
        self.wire = Tripwire(trip_at, die)
        inventory: Any = Wired(rt.inventory, self.wire, "db")
        state: Any = Wired(rt.state, self.wire, "state")
        cluster: Any = Wired(rt.cluster, self.wire, "cluster")
        validators: Any = {k: Wired(v, self.wire, "validator") for k, v in rt.validators.items()}
        clock = world.clock
        self.deployer = Deployer(
            inventory, state, cluster, validators, clock=clock, undeploy_wait_seconds=5
        )
        self.reconciler = Reconciler(
            inventory, cluster, rt.sync, self.deployer, validators, state, clock=clock
        )

        async def build_snapshot() -> Snapshot:
            inv: PgInventory = inventory
            st: PgState = state
            loaded = await load_snapshot(inv, st, rt.sync.snapshots, clock())
            return loaded.snapshot

        self.autoscaler = Autoscaler(
            state,
            self.deployer,
            validators,
            build_snapshot,
            policy=plan_policy(world.settings),
            max_in_flight=4,
            clock=clock,
            seed=seed,
            synced=lambda: rt.sync.snapshots,
        )
