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


def _typical(policy: ReliabilityPolicy) -> tuple[float, float, float]:
    """Prior survival of a chute, a server and a pair without a record."""
    return _mean(policy.chute_prior), _mean(policy.server_prior), _mean(policy.pair_prior)


Pair = tuple[str, str]  # (chute id, server id)


def reliability(
    records: Iterable[FailureRecord],
    now: datetime,
    policy: ReliabilityPolicy,
    backoff: BackoffPolicy,
) -> Reliability:
    outcomes = _decayed_outcomes(records, now, policy, backoff)
    cp, sp, pp = policy.chute_prior, policy.server_prior, policy.pair_prior
    chute_seen, server_seen = _tallies(outcomes)
    # Without deaths nothing needs attributing: those estimates are final.
    theta = {c: _posterior(cp, n, ok) for c, (n, ok) in chute_seen.items()}
    phi = {s: _posterior(sp, n, ok) for s, (n, ok) in server_seen.items()}
    psi = {pair: _posterior(pp, ok + dead, ok) for pair, (ok, dead) in outcomes.items()}
    deadly = [(pair, ok, dead) for pair, (ok, dead) in outcomes.items() if dead > 0]
    for pair, _, _ in deadly:  # the attribution starts from the priors
        theta[pair[0]], phi[pair[1]], psi[pair] = _mean(cp), _mean(sp), _mean(pp)
    for _ in range(policy.attribution_rounds):
        chute_blame, server_blame = _blame(deadly, theta, phi, psi, pp)
        for c, blamed in chute_blame.items():
            n = chute_seen[c][0]
            theta[c] = _posterior(cp, n, n - blamed)
        for s, blamed in server_blame.items():
            n = server_seen[s][0]
            phi[s] = _posterior(sp, n, n - blamed)

    typical_chute, typical_server, typical_pair = _typical(policy)
    return Reliability(
        prior=typical_chute * typical_server * typical_pair,
        chute={c: t * typical_server * typical_pair for c, t in theta.items()},
        server_factor={s: f / typical_server for s, f in phi.items()},
        pair_factor={pair: y / typical_pair for pair, y in psi.items()},
    )


def _decayed_outcomes(
    records: Iterable[FailureRecord],
    now: datetime,
    policy: ReliabilityPolicy,
    backoff: BackoffPolicy,
) -> dict[Pair, list[float]]:
    """Per (chute, server): [decayed survivals, decayed early deaths] (half-life decay)."""
    half_life = policy.half_life.total_seconds()
    outcomes: dict[Pair, list[float]] = {}
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
    return outcomes


def _tallies(
    outcomes: dict[Pair, list[float]],
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per chute and per server: [decayed outcomes, decayed survivals]."""
    chute_seen: dict[str, list[float]] = {}
    server_seen: dict[str, list[float]] = {}
    for (c, s), (ok, dead) in outcomes.items():
        for seen, key in ((chute_seen, c), (server_seen, s)):
            tally = seen.setdefault(key, [0.0, 0.0])
            tally[0] += ok + dead
            tally[1] += ok
    return chute_seen, server_seen


def _blame(
    deadly: list[tuple[Pair, float, float]],
    theta: dict[str, float],
    phi: dict[str, float],
    psi: dict[Pair, float],
    pair_prior: tuple[float, float],
) -> tuple[dict[str, float], dict[str, float]]:
    """One round of attributing the deaths: the deaths blamed on each chute and each server,
    from P(this cause failed | the instance died); updates each pair's estimate in `psi`."""
    chute_blame: dict[str, float] = {}
    server_blame: dict[str, float] = {}
    for pair, ok, dead in deadly:
        c, s = pair
        t, f, y = theta[c], phi[s], psi[pair]
        # The three causes can fail together.
        death = 1.0 - t * f * y
        if death <= 0.0:
            continue  # priors without failures: nothing can be blamed
        chute_blame[c] = chute_blame.get(c, 0.0) + dead * (1.0 - t) / death
        server_blame[s] = server_blame.get(s, 0.0) + dead * (1.0 - f) / death
        psi[pair] = _posterior(pair_prior, ok + dead, ok + dead * (1.0 - (1.0 - y) / death))
    return chute_blame, server_blame


def _posterior(prior: tuple[float, float], n: float, survived: float) -> float:
    return (prior[0] + survived) / (prior[0] + prior[1] + n)
