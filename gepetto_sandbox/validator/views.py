"""What the sandbox validator's read endpoints return, built from the world
(`docs/protocol.md#read-endpoints`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gepetto_sandbox.validator.catalog import iso
from gepetto_sandbox.validator.rules import (
    bounty_amount,
    effective_multiplier,
    utilization_row,
)
from gepetto_sandbox.validator.world import ValidatorWorld

# Fields the 2026 validator strips from instances it streams are kept: the Oct-2025
# contract the sandbox follows still sends them.


def chute_view(world: ValidatorWorld, chute: dict[str, Any]) -> dict[str, Any]:
    has_bounty = chute["chute_id"] in world.bounties
    value, factors = effective_multiplier(
        float(chute["node_selector"]["compute_multiplier"]),
        public=chute.get("public", True),
        boost=chute.get("boost"),
        has_bounty=has_bounty,
        tee=chute.get("tee", False),
    )
    view = dict(chute)
    view["effective_compute_multiplier"] = value
    view["compute_multiplier_factors"] = factors
    view["bounty"] = (
        bounty_amount(world.bounties[chute["chute_id"]], world.clock()) if has_bounty else None
    )
    return view


def chutes(world: ValidatorWorld) -> list[dict[str, Any]]:
    return [chute_view(world, c) for c in world.chutes.values()]


def nodes(world: ValidatorWorld, hotkey: str) -> list[dict[str, Any]]:
    return [n for n in world.nodes.values() if n["miner_hotkey"] == hotkey]


def instances(world: ValidatorWorld, hotkey: str) -> list[dict[str, Any]]:
    return [i for i in world.instances.values() if i["miner_hotkey"] == hotkey]


def unclaimed_jobs(world: ValidatorWorld) -> list[dict[str, Any]]:
    return [j for j in world.jobs.values() if j["instance_id"] is None and j["finished_at"] is None]


def metrics(world: ValidatorWorld) -> list[dict[str, Any]]:
    now = world.now()
    return [
        {**row, "start_date": iso(now - timedelta(hours=1)), "end_date": iso(now)}
        for row in world.metrics.values()
    ]


def active_instances(world: ValidatorWorld) -> list[dict[str, Any]]:
    return [
        {
            "instance_id": i["instance_id"],
            "miner_hotkey": i["miner_hotkey"],
            "chute_id": i["chute_id"],
            "activated_at": i["activated_at"],
            "compute_multiplier": i["compute_multiplier"],
        }
        for i in world.instances.values()
        if i["active"] and i["verified"]
    ]


def servers(world: ValidatorWorld, hotkey: str) -> dict[str, Any]:
    return {
        "servers": [
            {k: v for k, v in s.items() if k != "miner_hotkey"}
            for s in world.servers.values()
            if s["miner_hotkey"] == hotkey
        ]
    }


def utilization(world: ValidatorWorld) -> list[dict[str, Any]]:
    totals: dict[str, int] = {}
    actives: dict[str, int] = {}
    for inst in world.instances.values():  # one pass: the fleet can hold 10^4+ instances
        chute_id = inst["chute_id"]
        totals[chute_id] = totals.get(chute_id, 0) + 1
        actives[chute_id] = actives.get(chute_id, 0) + (inst["active"] and inst["verified"])
    rows = []
    for chute_id, log in world.capacity_logs.items():
        chute = world.chutes.get(chute_id)
        if chute is None:
            continue
        total = totals.get(chute_id, 0)
        target = world.targets.get(chute_id, log.get("target_count", total))
        rows.append(
            utilization_row(
                chute,
                log,
                target=int(target),
                total=total,
                active=actives.get(chute_id, 0),
                update_in_progress=chute_id in world.rolling_updates,
            )
        )
    rows.sort(key=lambda r: r.get("total_requests_1h", 0.0), reverse=True)
    return rows


def rolling_updates(world: ValidatorWorld) -> list[dict[str, Any]]:
    return [dict(r) for r in world.rolling_updates.values()]


def bounties(world: ValidatorWorld) -> list[dict[str, Any]]:
    now = world.clock()
    return [
        {
            "chute_id": chute_id,
            "bounty_amount": bounty_amount(created, now),
            "seconds_elapsed": int(now - created),
            "time_remaining": max(0, int(86_400 - (now - created))),
            "created_at": iso(world.now() - timedelta(seconds=now - created)),
        }
        for chute_id, created in world.bounties.items()
    ]
