"""The value model: what one more instance of a chute on a server is worth.

$ per hour over the instance's expected life,
``lambda * share(p) * m_bar * startup_factor * q - kappa * gpu_count * hourly_cost
- charge(p * q)``, where ``share`` is the part of the GPUs' occupied time that earns (a failed
start loses its start-up plus the time to notice, not a whole life: see `success_share`),
``q`` the server's and pair's reliability factor, ``charge`` the per-deploy cost of a failure
of this placement (`failure_charge`, capped at a few hours of the instance's pay; an
unreliable server makes every deploy on it likelier to fail, so there one big instance beats
many small ones), ``m_bar`` keeps a bounty's boost only for the 2 h the validator guarantees
it and ``startup_factor`` charges the start-up time minus its 0.3x credit. Only placements
worth more than ``min_value`` are made, so a loss-making placement never happens.

The value is split into per-chute terms computed once and a cheap per-server evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

from gepetto_core.scheduling.policy import PlanPolicy
from gepetto_core.scheduling.reliability import Reliability
from gepetto_core.scheduling.snapshot import ChuteView


@dataclass(frozen=True, slots=True)
class ChuteTerms:
    """Per-chute part of the value. Pair value: ``scale * q - cost_weight * cost - offset``
    (q = server and pair reliability factors). The failed-deploy charge ``C (1 - p q)`` is
    folded in: ``C p`` is part of ``scale`` and ``offset`` is ``C``, so the value stays linear
    in q."""

    scale: float
    cost_weight: float
    expected_multiplier: float
    p_survive: float
    offset: float = 0.0


def expected_multiplier(chute: ChuteView, policy: PlanPolicy) -> float:
    """The multiplier averaged over the expected life: the bounty part fades after 2 h."""
    m = chute.effective_compute_multiplier
    life = policy.expected_lifetime.total_seconds()
    guaranteed = min(policy.bounty_guarantee.total_seconds(), life)
    boost = chute.bounty_boost if chute.bounty_boost > 0 else 1.0
    return (guaranteed * m + (life - guaranteed) * m / boost) / life


def startup_factor(chute: ChuteView, policy: PlanPolicy) -> float:
    """Share of the life that earns, start-up counted at the validator's 0.3x credit (<= 1.5 h)."""
    life_h = policy.expected_lifetime.total_seconds() / 3600.0
    t = policy.startup_hours(chute.gpu_count, chute.startup_minutes)
    lost = t - 0.3 * min(t, 1.5)
    return max(0.0, 1.0 - lost / life_h)


def success_share(p: float, chute: ChuteView, policy: PlanPolicy) -> float:
    """What survival probability `p` is worth as a factor of the value.

    "lost_time" (default): a failed start only costs the GPU time it held (start-up plus the
    time to notice the death); the GPUs are then free for the next placement. The share of
    occupied time that earns is ``p L / (p L + (1 - p) T_fail)`` with L the expected life.
    "probability": the factor is p itself, which treats a failure as losing a whole life and
    makes one failure outweigh a 10 % higher multiplier.
    """
    rp = policy.reliability
    if rp.charge == "probability":
        return p
    life_h = policy.expected_lifetime.total_seconds() / 3600.0
    t_fail = policy.startup_hours(chute.gpu_count, chute.startup_minutes) + (
        rp.failure_detect.total_seconds() / 3600.0
    )
    earning = p * life_h
    lost = (1.0 - p) * t_fail
    return earning / (earning + lost) if earning + lost > 0 else 0.0


def chute_terms(chute: ChuteView, policy: PlanPolicy, rel: Reliability) -> ChuteTerms:
    g = max(1, chute.gpu_count)
    p = rel.chute_p(chute.chute_id)
    m_bar = expected_multiplier(chute, policy)
    share = success_share(p, chute, policy)
    scale = policy.dollars_per_multiplier_hour * share * m_bar * startup_factor(chute, policy)
    # The failure charge is for this placement's failure, whose probability is the chute's
    # times the server's and the pair's factor q: C (1 - p q) = C p q - C, linear in q.
    c = failed_deploy_rate(policy, m_bar)
    return ChuteTerms(scale + c * p, policy.cost_weight * g, m_bar, p, c)


def failed_deploy_rate(policy: PlanPolicy, m_bar: float) -> float:
    """C: a failed deploy's own cost (pulls, alerts, someone looking), at most
    `failed_deploy_cap_hours` of the pay of the instance (expected multiplier `m_bar`), spread
    over the expected life, in $/h."""
    cost = policy.failed_deploy_cost
    if policy.failed_deploy_cap_hours is not None:
        pay = policy.dollars_per_multiplier_hour * m_bar
        cost = min(cost, policy.failed_deploy_cap_hours * pay)
    return cost / (policy.expected_lifetime.total_seconds() / 3600.0)


def failure_charge(p: float, policy: PlanPolicy, m_bar: float) -> float:
    """The expected failed-deploy cost of an instance that survives with probability `p` and
    earns multiplier `m_bar`, per hour. It is per instance, not per GPU: one 8-GPU chute risks
    one failure where eight 1-GPU chutes risk eight."""
    return (1.0 - p) * failed_deploy_rate(policy, m_bar)
