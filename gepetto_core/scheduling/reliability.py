"""P(an instance survives its first hour), estimated from the failure ledger.

Beta posteriors per chute, per server and per (chute, server) pair, with counts decayed by a
half-life so old history fades. The pair estimate is the chute's, scaled by how much better or
worse than the prior the server and the pair have been.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from gepetto_core.scheduling.backoff import Outcome, classify, outcome_time
from gepetto_core.scheduling.policy import BackoffPolicy, ReliabilityPolicy
from gepetto_core.scheduling.snapshot import FailureRecord


@dataclass(frozen=True, slots=True)
class Reliability:
    prior: float
    chute: Mapping[str, float]
    # Factors relative to the prior (1.0 = no evidence either way).
    server_factor: Mapping[str, float]
    pair_factor: Mapping[tuple[str, str], float]

    def chute_p(self, chute_id: str) -> float:
        return self.chute.get(chute_id, self.prior)

    def p(self, chute_id: str, server_id: str) -> float:
        p = (
            self.chute.get(chute_id, self.prior)
            * self.server_factor.get(server_id, 1.0)
            * self.pair_factor.get((chute_id, server_id), 1.0)
        )
        return min(1.0, p)


def reliability(
    records: Iterable[FailureRecord],
    now: datetime,
    policy: ReliabilityPolicy,
    backoff: BackoffPolicy,
) -> Reliability:
    a, b = policy.prior_success, policy.prior_failure
    prior = a / (a + b)
    half_life = policy.half_life.total_seconds()
    # ("c", chute) / ("s", server) / ("p", chute, server) -> [successes, failures]
    counts: dict[tuple[str, ...], list[float]] = {}
    for r in records:
        outcome = classify(r, now, backoff)
        if outcome is Outcome.NEUTRAL:
            continue
        age = (now - outcome_time(r, outcome, backoff)).total_seconds()
        if age < 0:
            continue
        w = 0.5 ** (age / half_life)
        slot = 1 if outcome is Outcome.FAILURE else 0
        keys: tuple[tuple[str, ...], ...] = (
            ("c", r.chute_id),
            ("s", r.server_id),
            ("p", r.chute_id, r.server_id),
        )
        for key in keys:
            counts.setdefault(key, [0.0, 0.0])[slot] += w

    def mean(sf: list[float]) -> float:
        return (a + sf[0]) / (a + b + sf[0] + sf[1])

    chute: dict[str, float] = {}
    server_factor: dict[str, float] = {}
    pair_factor: dict[tuple[str, str], float] = {}
    for key, sf in counts.items():
        if key[0] == "c":
            chute[key[1]] = mean(sf)
        elif key[0] == "s":
            server_factor[key[1]] = mean(sf) / prior
        else:
            pair_factor[(key[1], key[2])] = mean(sf) / prior
    return Reliability(prior, chute, server_factor, pair_factor)


def flat_reliability(policy: ReliabilityPolicy) -> Reliability:
    a, b = policy.prior_success, policy.prior_failure
    return Reliability(a / (a + b), {}, {}, {})
