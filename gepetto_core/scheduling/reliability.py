"""P(an instance survives its first hour), estimated from the failure ledger.

An instance survives when its chute, its server and the pair all behave: P = θ_chute · φ_server
· ψ_pair, each with a Beta prior and the ledger's outcomes decayed by a half-life. A survival is
evidence for all three; an early death is evidence against whichever caused it, and the cause is
not observed. So deaths are attributed by expectation-maximisation: given the current estimates,
the chute caused a death on server s with probability (1 - θ) / (1 - θ φ ψ), and likewise for
the server and the pair; the estimates are recomputed from those fractional counts, a few times.
Three chutes dying on one box then condemn the box, not the chutes, and a chute dying on three
good boxes is condemned itself — where counting every death against all three scopes would shut
a healthy chute out fleet-wide for having run on a bad box.
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
    # The chute's survival on a server and pair without a record of their own.
    chute: Mapping[str, float]
    # Factors relative to that typical server and pair (1.0 = no evidence either way).
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


def _mean(prior: tuple[float, float]) -> float:
    return prior[0] / (prior[0] + prior[1])


def reliability(
    records: Iterable[FailureRecord],
    now: datetime,
    policy: ReliabilityPolicy,
    backoff: BackoffPolicy,
) -> Reliability:
    half_life = policy.half_life.total_seconds()
    # (chute, server) -> [decayed survivals, decayed early deaths]
    outcomes: dict[tuple[str, str], list[float]] = {}
    for r in records:
        outcome = classify(r, now, backoff)
        if outcome is Outcome.NEUTRAL:
            continue
        age = (now - outcome_time(r, outcome, backoff)).total_seconds()
        if age < 0:
            continue
        weight = 0.5 ** (age / half_life)
        slot = 1 if outcome is Outcome.FAILURE else 0
        outcomes.setdefault((r.chute_id, r.server_id), [0.0, 0.0])[slot] += weight

    cp, sp, pp = policy.chute_prior, policy.server_prior, policy.pair_prior
    theta = {c: _mean(cp) for c, _ in outcomes}
    phi = {s: _mean(sp) for _, s in outcomes}
    psi = {pair: _mean(pp) for pair in outcomes}
    for _ in range(policy.attribution_rounds):
        chute_counts = {c: list(cp) for c in theta}
        server_counts = {s: list(sp) for s in phi}
        for pair, (ok, dead) in outcomes.items():
            c, s = pair
            t, f, y = theta[c], phi[s], psi[pair]
            death = 1.0 - t * f * y
            # P(this cause failed | the instance died); 0 when nothing could fail.
            blame_c, blame_s, blame_p = (
                ((1.0 - t) / death, (1.0 - f) / death, (1.0 - y) / death)
                if death > 0
                else (0.0, 0.0, 0.0)
            )
            counts = chute_counts[c]
            counts[0] += ok + dead * (1.0 - blame_c)
            counts[1] += dead * blame_c
            counts = server_counts[s]
            counts[0] += ok + dead * (1.0 - blame_s)
            counts[1] += dead * blame_s
            psi[pair] = (pp[0] + ok + dead * (1.0 - blame_p)) / (pp[0] + pp[1] + ok + dead)
        theta = {c: a / (a + b) for c, (a, b) in chute_counts.items()}
        phi = {s: a / (a + b) for s, (a, b) in server_counts.items()}

    typical_server, typical_pair = _mean(sp), _mean(pp)
    return Reliability(
        prior=_mean(cp) * typical_server * typical_pair,
        chute={c: t * typical_server * typical_pair for c, t in theta.items()},
        server_factor={s: f / typical_server for s, f in phi.items()},
        pair_factor={pair: y / typical_pair for pair, y in psi.items()},
    )


def flat_reliability(policy: ReliabilityPolicy) -> Reliability:
    prior = _mean(policy.chute_prior) * _mean(policy.server_prior) * _mean(policy.pair_prior)
    return Reliability(prior, {}, {}, {})
