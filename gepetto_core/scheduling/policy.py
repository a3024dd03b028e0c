"""Tunable knobs of the pure scheduler, passed in explicitly (never read from the environment).

The rules these knobs tune are in `docs/scheduling.md`: the 65-minute dwell, hysteresis of 25 %
with a 2-hour pay-back, a budget of one preemption per server per 6 h and four per hour
fleet-wide, and the failure back-off (16-minute window, 1 h doubling to at most 8 h). What the
benchmark measured for each default is in `docs/scheduling.md#defaults`; re-measure with
`make bench` before changing one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    # A deployment that ended this soon after creation is a failure.
    failure_window: timedelta = timedelta(minutes=16)
    # The validator pays an instance nothing unless it lives this long after activation (the
    # rule the dwell also follows, docs/scheduling.md): a counted end before then, or without
    # ever activating, is a failure however long the start-up took. None = `failure_window`
    # alone decides.
    earning_delay: timedelta | None = timedelta(hours=1)
    base_cooldown: timedelta = timedelta(hours=1)
    growth: float = 2.0
    max_cooldown: timedelta = timedelta(hours=8)
    # A run at least this long forgives earlier failures in its scope.
    healthy_run: timedelta = timedelta(hours=1)
    # Chute-wide back-off needs failures on this many distinct servers within chute_window.
    chute_distinct_servers: int = 2
    chute_window: timedelta = timedelta(hours=6)
    # Server-wide back-off needs failures of this many distinct chutes within server_window.
    server_distinct_chutes: int = 3
    server_window: timedelta = timedelta(hours=2)
    # A server in back-off still takes this many starting deployments at a time (half-open,
    # like a chute on probation): a box whose failures were bad luck proves itself instead of
    # idling its free GPUs for hours. 0 = a fenced server takes nothing.
    fenced_server_probes: int = 1
    # Ledger reasons that are never failures, whatever `counted` says.
    never_failure_reasons: frozenset[str] = frozenset({"no_capacity", "423"})
    # A chute whose launch the validator refused (403: a rule of its own we do not model)
    # is not tried again for this long: asking every round would only be refused every round.
    launch_refusal_cooldown: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class ReliabilityPolicy:
    """P(an instance survives its first hour) = the chute's x the server's x the pair's
    survival, each a Beta posterior; an early death is blamed on the three causes by how likely
    each is to have caused it (`reliability.reliability`)."""

    # Beta priors (successes, failures) per cause. Their means multiply to about 0.9 (one start
    # in ten fails); each is worth 5 observations, so two early deaths say more than the prior.
    # A chute is likelier to be broken than a box (a bad image or model config fails on every
    # box), a box than one pair (a pair-specific fault needs both).
    chute_prior: tuple[float, float] = (4.75, 0.25)
    server_prior: tuple[float, float] = (4.85, 0.15)
    pair_prior: tuple[float, float] = (4.9, 0.1)
    half_life: timedelta = timedelta(hours=24)
    # Rounds of re-attributing the deaths (expectation-maximisation); a few are enough.
    attribution_rounds: int = 5
    # A chute whose estimated survival is below this is not scaled at all (its failures fade
    # with the half-life); 0 = never.
    exclude_below: float = 0.65
    # How a chute's survival probability enters its value (see `value.success_share`).
    charge: Literal["lost_time", "probability"] = "lost_time"
    # A failed start holds its GPUs for the start-up time plus this long before it is noticed.
    failure_detect: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class PreemptionPolicy:
    enabled: bool = True
    # Never remove an instance younger than this since activation (it would earn nothing).
    dwell: timedelta = timedelta(minutes=65)
    # v_new - v_keep must be >= max(min_gain_ratio * v_keep, min_gain).
    min_gain_ratio: float = 0.25
    min_gain: float = 0.0
    # The gain must repay the victim's lost earning during the newcomer's start-up within this.
    payback: timedelta = timedelta(hours=2)
    per_server_interval: timedelta = timedelta(hours=6)
    fleet_per_hour: int = 4
    # A preemption for ordinary work must be proposed in this many consecutive rounds.
    confirm_rounds: int = 2


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    # lambda: dollars earned per multiplier-hour (estimate from emissions).
    dollars_per_multiplier_hour: float = 4.0
    # kappa: 1 when idle GPUs are avoidable cost (rentals), 0 when the cost is sunk.
    cost_weight: float = 1.0
    # Profitability floor: a placement worth this or less ($/h) is never made.
    min_value: float = 0.0
    expected_lifetime: timedelta = timedelta(hours=18)
    # What one failed deploy costs beyond its GPU time ($: pulls, alerts, operator time),
    # charged per instance as (1 - P(this placement survives)) x this, spread over the
    # expected life; the chute's, the server's and the pair's record all enter P.
    failed_deploy_cost: float = 10.0
    # ... but never more than this many hours of what the instance would earn (lambda x its
    # multiplier), so one failure of a cheap chute does not outweigh a lasting difference in
    # its pay. None = the flat cost whatever the pay.
    failed_deploy_cap_hours: float | None = 7.0
    # A bounty's boost is only guaranteed this long after activation.
    bounty_guarantee: timedelta = timedelta(hours=2)
    # Start-up minutes by gpu_count until the chute's own start-ups are observed (the service
    # passes their median as `ChuteView.startup_minutes`). A guess that errs long: too short
    # makes a preemption's pay-back and a failed start look cheaper than they are, too long only
    # holds them back until the first start is seen. A quarter, half and whole hour: the
    # bigger the chute, the bigger the weights to pull and load.
    startup_minutes_by_gpus: tuple[tuple[int, float], ...] = ((2, 15.0), (4, 30.0), (8, 60.0))
    min_disk_gb: float = 10.0
    # Placements per round; None = as many as are worth placing.
    max_deploys_per_round: int | None = 24
    # Concurrent image pulls per server (pending deployments included); None = no limit.
    # Off by default: a limit spreads 1-GPU chutes over every box, leaving no empty box for
    # 8-GPU chutes.
    max_pulls_per_server: int | None = None
    whitelist_only: bool = False

    # Slot order: density x (1 + size_priority x log2(gpu_count)); 0 = density alone.
    size_priority: float = 0.0
    # Servers whose value is within this fraction of the best are ties; best fit breaks them.
    best_fit_window: float = 0.03
    # Greedy passes re-priced with GPU opportunity costs (1 = plain value-density greedy).
    opportunity_passes: int = 2
    repair: bool = True
    # Rounds with at most this many (1-GPU chute, server) pairs re-assign their 1-GPU slots
    # exactly (min-cost flow); 0 = never.
    exact_pairs_limit: int = 4000
    # ... and try this many multi-GPU relocations, each judged by one more flow.
    exact_relocations: int = 12
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    reliability: ReliabilityPolicy = field(default_factory=ReliabilityPolicy)
    preemption: PreemptionPolicy = field(default_factory=PreemptionPolicy)

    def startup_hours(self, gpu_count: int, startup_minutes: float | None) -> float:
        if startup_minutes is not None:
            return startup_minutes / 60.0
        for max_gpus, minutes in self.startup_minutes_by_gpus:
            if gpu_count <= max_gpus:
                return minutes / 60.0
        return self.startup_minutes_by_gpus[-1][1] / 60.0
