"""Why each chute was placed or not in a round: the decisions `explain` and the Slack views
show."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gepetto_core.scheduling.assignment import slot_value
from gepetto_core.scheduling.plan import ChuteDecision, Placement
from gepetto_core.scheduling.round_state import Group, GroupKey, RoundState, Slot, Srv
from gepetto_core.scheduling.rules import (
    Reason,
    Rejection,
    compatibility_rejection,
    pair_rejection,
)
from gepetto_core.scheduling.snapshot import ChuteView


@dataclass(slots=True)
class _Diagnoses:
    """What is the same for chutes with the same needs, kept for the rest of the round."""

    by_need: dict[tuple[frozenset[str], bool, str], Rejection] = field(default_factory=dict)
    fitting: dict[tuple[tuple[Group, ...], int], list[Srv]] = field(default_factory=dict)
    fenced: dict[tuple[frozenset[str], bool, str, int], Rejection | None] = field(
        default_factory=dict
    )


def _diagnose(ctx: RoundState, slot: Slot, cache: _Diagnoses) -> Rejection:
    """Why a chute that passed the chute rules had no server at all."""
    chute = slot.chute
    if not slot.groups:
        fenced = _cached_fenced(ctx, chute, cache)
        if fenced is not None:
            return fenced
        need = (chute.supported_gpus, chute.tee, chute.validator)
        known = cache.by_need.get(need)
        if known is None:
            known = cache.by_need[need] = _no_compatible_server(ctx, chute)
        return known
    key = (tuple(slot.groups), chute.gpu_count)
    fitting = cache.fitting.get(key)
    if fitting is None:
        fitting = cache.fitting[key] = [
            s
            for grp in slot.groups
            for s in grp.servers
            if s.free >= chute.gpu_count and s.pulls_left > 0
        ]
    if not fitting:
        fenced = _cached_fenced(ctx, chute, cache)
        if fenced is not None:
            return fenced
        return Rejection(
            Reason.NOT_ENOUGH_GPUS,
            f"no compatible server has {chute.gpu_count} free verified GPUs",
        )
    for srv in fitting:
        rej = pair_rejection(chute, srv.view, srv.free, ctx.backoff)
        if rej is None:
            v = slot_value(slot, srv)
            return Rejection(
                Reason.UNPROFITABLE,
                f"best value {v:.3f} <= floor {ctx.policy.min_value:.3f}",
            )
    last = pair_rejection(chute, fitting[0].view, fitting[0].free, ctx.backoff)
    assert last is not None
    return last


def _cached_fenced(ctx: RoundState, chute: ChuteView, cache: _Diagnoses) -> Rejection | None:
    need_key = (chute.supported_gpus, chute.tee, chute.validator, chute.gpu_count)
    if need_key not in cache.fenced:
        cache.fenced[need_key] = _fenced_server_with_room(ctx, chute)
    return cache.fenced[need_key]


def _fenced_server_with_room(ctx: RoundState, chute: ChuteView) -> Rejection | None:
    """A compatible server with room that a server rule (lock, disk, back-off) left out of the
    round: the operator should hear about that rule, not that the fleet is full."""
    for server_id, rej in sorted(ctx.server_rejections.items()):
        view = ctx.snapshot.server_by_id[server_id]
        if compatibility_rejection(chute, view) is not None:
            continue
        if len(view.free_gpu_ids()) >= chute.gpu_count:
            return Rejection(rej.reason, f"{view.name} has room but is left out: {rej.detail}")
    return None


def _no_compatible_server(ctx: RoundState, chute: ChuteView) -> Rejection:
    if not ctx.servers:
        return Rejection(Reason.NO_SERVER, "no server passes the server rules")
    first = compatibility_rejection(chute, ctx.servers[0].view)
    reasons = {compatibility_rejection(chute, s.view) for s in ctx.servers}
    reasons.discard(None)
    if len(reasons) == 1 and first is not None:
        return first
    types = ", ".join(sorted(chute.supported_gpus))
    return Rejection(Reason.NO_SERVER, f"no {'TEE ' if chute.tee else ''}server with {types}")


def chute_decisions(
    ctx: RoundState,
    placements: list[Placement],
    unplaced: list[Slot],
) -> dict[str, ChuteDecision]:
    placed_count: dict[str, int] = {}
    for p in placements:
        if p.job_id is None:
            placed_count[p.chute_id] = placed_count.get(p.chute_id, 0) + 1
    first_slot: dict[str, Slot] = {}
    for candidate in ctx.slots:
        if candidate.job_id is None:
            first_slot.setdefault(candidate.chute.chute_id, candidate)
    unplaced_ids = {s.chute.chute_id for s in unplaced if s.job_id is None}
    min_density: dict[GroupKey, float] = {}
    for p in placements:
        srv = ctx.snapshot.server_by_id[p.server_id]
        key = (srv.gpu_type, srv.is_tee, srv.validator)
        d = p.value / max(1, len(p.gpu_ids))
        min_density[key] = min(d, min_density.get(key, math.inf))
    out: dict[str, ChuteDecision] = {}
    diagnoses = _Diagnoses()
    for chute in ctx.snapshot.chutes:
        cid = chute.chute_id
        wanted = ctx.wanted.get(cid, 0)
        placed = placed_count.get(cid, 0)
        rej = ctx.chute_rejections.get(cid)
        slot = first_slot.get(cid)
        best_id = None
        best_v = None
        needed = None
        if slot is not None and slot.best_server is not None:
            best_id = slot.best_server.view.server_id
            best_v = slot.best_value
            competitors = [min_density[grp.key] for grp in slot.groups if grp.key in min_density]
            if competitors:
                # To be placed it had to beat the cheapest placement that took its GPUs.
                needed = max(ctx.policy.min_value, min(competitors) * chute.gpu_count)
        if rej is None and slot is None and wanted > 0:
            rej = Rejection(Reason.NOT_ENOUGH_GPUS, "the fleet has no free GPUs")
        if rej is None and slot is not None and slot.best_server is None:
            rej = _diagnose(ctx, slot, diagnoses)
        elif rej is None and (cid in unplaced_ids or placed < min(wanted, 1)):
            need_txt = f" (needed more than {needed:.3f})" if needed else ""
            rej = Rejection(
                Reason.OUTBID,
                f"{placed} of {wanted} placed; the GPUs went to better-paying chutes{need_txt}",
            )
        out[cid] = ChuteDecision(cid, wanted, placed, rej, best_id, best_v, needed)
    return out


def mark_round_limit(
    decisions: dict[str, ChuteDecision], deferred: list[Slot]
) -> dict[str, ChuteDecision]:
    out = dict(decisions)
    for slot in deferred:
        d = out.get(slot.chute.chute_id)
        if d is not None and d.rejection is not None and d.rejection.reason is Reason.OUTBID:
            out[d.chute_id] = ChuteDecision(
                d.chute_id,
                d.wanted,
                d.placed,
                Rejection(Reason.ROUND_LIMIT, "deferred: this round's deploy limit was reached"),
                d.best_server_id,
                d.best_value,
                d.needed_value,
            )
    return out
