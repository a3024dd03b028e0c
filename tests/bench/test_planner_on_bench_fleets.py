"""Planner invariants checked on the benchmark's generated fleets: large, varied inputs with
failure history that hand-built snapshots do not reach."""

from __future__ import annotations

import random
from dataclasses import replace

from bench.fleets import make_snapshot, make_world
from gepetto_core.scheduling import PlanPolicy
from gepetto_core.scheduling.assignment import group_bound, slot_value
from gepetto_core.scheduling.context import build_context
from tests.unit.scheduling.builders import NOW


def test_group_bound_is_never_below_a_servers_value() -> None:
    """The exact pass skips a group whose bound is at or below the floor: a bound under any
    server's value would lose a pair. Every model and cost mode, on fleets with failure history
    (pair and server reliability factors)."""
    base = PlanPolicy(max_deploys_per_round=None)
    policies = [
        replace(base, cost_weight=0.0),
        replace(base, cost_weight=1.0),
        replace(base, value_model="official"),
    ]
    for profile in ("tee", "legacy"):
        world = make_world(profile, 60, 20, 3)
        snap = make_snapshot(world, NOW, 3, prefill=0.3, history=300)
        for policy in policies:
            ctx = build_context(snap, policy, NOW, random.Random(0))
            checked = 0
            for slot in ctx.slots:
                for grp in slot.groups:
                    cheapest = min(srv.cost for srv in grp.servers)
                    bound = group_bound(slot, grp, cheapest)
                    for srv in grp.servers:
                        assert slot_value(slot, srv) <= bound, (profile, policy.value_model)
                        checked += 1
            assert checked > 100
