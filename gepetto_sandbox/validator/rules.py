"""The validator's capacity and pricing rules, as pure functions (`docs/protocol.md#capacity`,
`#multipliers`).

They decide the 423s a miner sees, the ``scalable`` flag of ``/chutes/utilization`` and the
``effective_compute_multiplier`` of a chute, so scheduler decisions tested against the sandbox
match what production would answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_BOUNTY = 86_400
# Factors of the 2026 effective multiplier. The validator names them; private and integrated-subnet
# values are documented, the bounty and TEE bonuses are the sandbox's own choice.
PRIVATE_FACTOR = 2.0
BOUNTY_FACTOR = 1.5
TEE_FACTOR = 1.25
MAX_URGENCY_BOOST = 20.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the validator says no: an HTTP status and the ``detail`` text."""

    status: int
    detail: str


def check_public_capacity(
    chute_id: str,
    *,
    hotkey: str,
    total: int,
    active: int,
    mine: int,
    target: int,
    rolling_permitted: Mapping[str, int] | None,
) -> Refusal | None:
    """The public-chute gate behind ``/instances/launch_config``, rules in order
    (`docs/protocol.md#capacity`)."""
    if total <= target + 2 and active == 0:
        return None  # nothing routable yet: any miner may try
    if rolling_permitted is not None and total >= target - 2 and rolling_permitted:
        if rolling_permitted.get(hotkey, 0) > 0:
            return None
        return Refusal(
            423, f"Chute {chute_id} is undergoing a rolling update and you have no quota"
        )
    if total >= target:
        return Refusal(
            423, f"Chute {chute_id} has reached its target capacity of {target} instances."
        )
    if target - total <= 2 and total > 0 and mine == total:
        return Refusal(
            423,
            f"Chute {chute_id} is near capacity and all existing instances belong to you;"
            " leave room for other miners.",
        )
    return None


def check_private_capacity(
    chute_id: str, *, active: int, target: int, has_bounty: bool, public_footprint_ok: bool
) -> Refusal | None:
    """The private-chute gate (`docs/protocol.md#capacity`)."""
    if active == 0 and not has_bounty:
        return Refusal(423, f"Private chute {chute_id} has no pending requests.")
    if target > 0 and active >= target:
        return Refusal(
            423, f"Private chute {chute_id} has reached its target capacity of {target}."
        )
    if not public_footprint_ok:
        return Refusal(
            403,
            "You must have at least 2 activated public instances using 16 or more GPUs"
            " to run private chutes.",
        )
    return None


def bounty_amount(created_at: float, now: float) -> int:
    """Compute units a bounty is worth: grows 3/s from 100, capped at one day's worth."""
    return int(min(3 * max(0.0, now - created_at) + 100, MAX_BOUNTY))


def effective_multiplier(
    base: float, *, public: bool, boost: float | None, has_bounty: bool, tee: bool
) -> tuple[float, dict[str, float]]:
    """The 2026 ``effective_compute_multiplier`` and the factors that made it."""
    factors: dict[str, float] = {"base": base}
    if not public:
        factors["private"] = PRIVATE_FACTOR
    if boost is not None and 0 < boost <= MAX_URGENCY_BOOST and boost != 1:
        factors["urgency_boost"] = boost
    if has_bounty:
        factors["bounty_boost"] = BOUNTY_FACTOR
    if tee:
        factors["tee"] = TEE_FACTOR
    value = 1.0
    for factor in factors.values():
        value *= factor
    return value, factors


def utilization_row(
    chute: Mapping[str, Any],
    log: Mapping[str, Any],
    *,
    target: int,
    total: int,
    active: int,
    update_in_progress: bool,
) -> dict[str, Any]:
    """One element of ``GET /chutes/utilization`` (`docs/protocol.md#read-endpoints`): the latest
    capacity-log row plus the derived fields miners read (``scalable`` compares the total
    instance count with target)."""
    row = dict(log)
    row.update(
        chute_id=chute["chute_id"],
        name=chute["name"] if chute.get("public", True) else "[private chute]",
        target_count=target,
        instance_count=total,
        total_instance_count=total,
        active_instance_count=active,
        update_in_progress=update_in_progress,
        scalable=total < target,
        scale_allowance=max(0, target - total),
        avg_busy_ratio=log.get("utilization_1h", 0.0),
        total_invocations=log.get("total_requests_1h", 0.0),
        total_rate_limit_errors=log.get("rate_limited_requests_1h", 0.0),
    )
    return row
