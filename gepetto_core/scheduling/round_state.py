"""Working state of one planning round: the snapshot after the rules, arranged for fast search.

Servers that pass the server rules are grouped by (gpu_type, is_tee, validator), the key of every
static pair rule. Inside a group, servers are kept in lists by free-GPU count, each sorted by
cost (or by reliability when cost is sunk), so the best server for a chute is found by looking
at a few list heads instead of every server (the value falls with cost and rises with
reliability: see `assignment.search`).
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from operator import attrgetter

from gepetto_core.scheduling.backoff import BackoffState, backoff_state
from gepetto_core.scheduling.policy import PlanPolicy
from gepetto_core.scheduling.reliability import Reliability, reliability
from gepetto_core.scheduling.rules import (
    Reason,
    Rejection,
    allowance_free,
    chute_rejection,
    pull_limit,
    server_rejection,
)
from gepetto_core.scheduling.snapshot import ChuteView, ServerView, Snapshot
from gepetto_core.scheduling.value import ChuteTerms, chute_terms

GroupKey = tuple[str, bool, str]
NO_LIMIT = 1 << 30
_SORT_KEY = attrgetter("sort_key")  # C-level key for the free-GPU lists' bisects


class Tier(IntEnum):
    """Placement priority of a slot, lowest first: the planner places jobs, then whitelisted
    chutes, then the rest, and never displaces a slot of a lower tier for one of a higher."""

    JOB = 0
    WHITELISTED = 1
    ORDINARY = 2


@dataclass(eq=False, slots=True)
class Srv:
    view: ServerView
    idx: int
    cost: float
    q: float  # server reliability factor
    free_ids: list[str]
    pulls_left: int
    group: Group | None = None
    # GPU opportunity cost per GPU this pass: what a turned-away slot would have paid here.
    price: float = 0.0
    # The slot whose bid set the price: it does not pay its own bid (as in an auction).
    price_owner: Slot | None = None
    initial_free: int = 0
    # Order inside a group's free-GPU lists: by cost, or by reliability (best first) when the
    # value does not depend on cost (sunk cost), so searches stop early.
    sort_key: tuple[float, int] = (0.0, 0)

    # len(free_ids), read in every inner loop of the planner: change both with `set_free_ids`.
    free: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.free = len(self.free_ids)

    def set_free_ids(self, ids: list[str]) -> None:
        self.free_ids = ids
        self.free = len(ids)


@dataclass(eq=False, slots=True)
class Group:
    key: GroupKey
    servers: list[Srv]
    q_max: float = 1.0
    # True: lists are sorted by reliability q (descending) instead of cost (see `Srv.sort_key`).
    by_q: bool = False
    min_price: float = 0.0
    owners: set[Slot] = field(default_factory=set)  # slots whose bids set prices here
    # free-GPU count -> servers with exactly that many free (and a pull slot), by cost.
    by_free: dict[int, list[Srv]] = field(default_factory=dict)

    def add(self, srv: Srv) -> None:
        if srv.free <= 0 or srv.pulls_left <= 0:
            return
        lst = self.by_free.setdefault(srv.free, [])
        bisect.insort(lst, srv, key=_SORT_KEY)

    def remove(self, srv: Srv) -> None:
        lst = self.by_free.get(srv.free)
        if lst is None:
            return
        i = bisect.bisect_left(lst, srv.sort_key, key=_SORT_KEY)
        if i < len(lst) and lst[i] is srv:
            del lst[i]
            if not lst:
                del self.by_free[srv.free]


@dataclass(eq=False, slots=True)
class Slot:
    """One instance we would like to place (a chute has as many slots as its allowance)."""

    chute: ChuteView
    terms: ChuteTerms
    groups: list[Group]
    pair_factor: dict[str, float]
    r_max: float
    blocked: frozenset[str]
    tier: Tier
    job_id: str | None = None
    density: float = 0.0
    best_value: float | None = None
    best_server: Srv | None = None


@dataclass(eq=False)
class RoundState:
    snapshot: Snapshot
    policy: PlanPolicy
    now: datetime
    backoff: BackoffState
    rel: Reliability
    servers: list[Srv]
    groups: dict[GroupKey, Group]
    chute_rejections: dict[str, Rejection]
    server_rejections: dict[str, Rejection]
    wanted: dict[str, int]
    terms: dict[str, ChuteTerms]
    chute_groups: dict[str, list[Group]]
    slots: list[Slot] = field(default_factory=list)


def _chute_groups(chute: ChuteView, groups: dict[GroupKey, Group]) -> list[Group]:
    out: list[Group] = []
    for key, grp in groups.items():
        gpu_type, is_tee, validator = key
        if (
            gpu_type in chute.supported_gpus
            and is_tee == chute.tee
            and validator == chute.validator
        ):
            out.append(grp)
    return out


def build_round_state(
    snapshot: Snapshot, policy: PlanPolicy, now: datetime, rng: random.Random
) -> RoundState:
    backoff = backoff_state(snapshot.failures, now, policy.backoff)
    rel = reliability(snapshot.failures, now, policy.reliability, policy.backoff)
    ctx = RoundState(
        snapshot=snapshot,
        policy=policy,
        now=now,
        backoff=backoff,
        rel=rel,
        servers=[],
        groups={},
        chute_rejections={},
        server_rejections={},
        wanted={},
        terms={},
        chute_groups={},
    )
    _build_servers(ctx, rng)
    _build_slots(ctx)
    return ctx


def _build_servers(ctx: RoundState, rng: random.Random) -> None:
    """The servers that pass the server rules, in random order (ties in cost are broken at
    random, not by input order), grouped by the static pair rules' key."""
    snapshot, policy, backoff = ctx.snapshot, ctx.policy, ctx.backoff
    pending_on: dict[str, int] = {}
    for d in snapshot.deployments:
        if d.pending:
            pending_on[d.server_id] = pending_on.get(d.server_id, 0) + 1
    order = list(range(len(snapshot.servers)))
    rng.shuffle(order)
    for rank, i in enumerate(order):
        view = snapshot.servers[i]
        pending = pending_on.get(view.server_id, 0)
        rej = server_rejection(view, policy, backoff, pending)
        if rej is not None:
            ctx.server_rejections[view.server_id] = rej
            continue
        free_ids = view.free_gpu_ids()
        limit = pull_limit(view, policy, backoff)
        q = ctx.rel.server_factor.get(view.server_id, 1.0)
        srv = Srv(
            view=view,
            idx=rank,
            cost=view.hourly_cost,
            q=q,
            free_ids=free_ids,
            pulls_left=NO_LIMIT if limit is None else limit - pending,
            initial_free=len(free_ids),
        )
        key: GroupKey = (view.gpu_type, view.is_tee, view.validator)
        grp = ctx.groups.get(key)
        if grp is None:
            grp = ctx.groups[key] = Group(key=key, servers=[])
        srv.group = grp
        grp.servers.append(srv)
        ctx.servers.append(srv)
    by_q = policy.cost_weight == 0
    for grp in ctx.groups.values():
        grp.q_max = max((s.q for s in grp.servers), default=1.0)
        grp.by_q = by_q
        for s in grp.servers:
            s.sort_key = (-s.q, s.idx) if by_q else (s.cost, s.idx)
            grp.add(s)


def _build_slots(ctx: RoundState) -> None:
    snapshot, policy = ctx.snapshot, ctx.policy
    total_free = sum(s.free for s in ctx.servers)
    # Pair evidence grouped once per chute (the ledger may be long).
    factors_by_chute: dict[str, dict[str, float]] = {}
    for (chute_id, server_id), f in ctx.rel.pair_factor.items():
        factors_by_chute.setdefault(chute_id, {})[server_id] = f
    blocked_by_chute: dict[str, set[str]] = {}
    for chute_id, server_id in ctx.backoff.pairs:
        blocked_by_chute.setdefault(chute_id, set()).add(server_id)
    groups_by_need: dict[tuple[frozenset[str], bool, str], list[Group]] = {}
    for chute in snapshot.chutes:
        terms = chute_terms(chute, policy, ctx.rel)
        need = (frozenset(chute.supported_gpus), chute.tee, chute.validator)
        groups = groups_by_need.get(need)
        if groups is None:
            groups = groups_by_need[need] = _chute_groups(chute, ctx.groups)
        ctx.chute_groups[chute.chute_id] = groups
        ctx.terms[chute.chute_id] = terms
        factors = factors_by_chute.get(chute.chute_id, {})
        r_max = max(1.0, *factors.values()) if factors else 1.0
        blocked = frozenset(blocked_by_chute.get(chute.chute_id, ()))
        # Jobs: the validator asked for them; only a ban or a stale version stops them.
        if chute.job_ids and not chute.ban_reason and chute.at_remote_version:
            for job_id in chute.job_ids:
                ctx.slots.append(
                    Slot(chute, terms, groups, factors, r_max, blocked, Tier.JOB, job_id=job_id)
                )
        rej = chute_rejection(chute, snapshot, policy, ctx.backoff)
        if rej is None:
            p = ctx.rel.chute_p(chute.chute_id)
            if p < policy.reliability.exclude_below:
                rej = Rejection(
                    Reason.UNRELIABLE,
                    f"estimated survival {p:.2f} < {policy.reliability.exclude_below:.2f}",
                )
        if rej is not None:
            ctx.chute_rejections[chute.chute_id] = rej
            ctx.wanted[chute.chute_id] = 0
            continue
        free = allowance_free(chute, snapshot)
        if chute.chute_id in ctx.backoff.suspects:
            free = min(free, 1 - snapshot.our_pending(chute.chute_id))  # probation
            if free <= 0:
                ctx.chute_rejections[chute.chute_id] = Rejection(
                    Reason.PROBATION, "failed recently: one instance at a time until one is healthy"
                )
                ctx.wanted[chute.chute_id] = 0
                continue
        # More slots than the free GPUs could hold are pointless; keep one for preemption.
        copies = min(free, max(1, total_free // max(1, chute.gpu_count)))
        ctx.wanted[chute.chute_id] = free
        tier = Tier.WHITELISTED if chute.chute_id in snapshot.whitelist else Tier.ORDINARY
        for _ in range(copies):
            ctx.slots.append(Slot(chute, terms, groups, factors, r_max, blocked, tier))
