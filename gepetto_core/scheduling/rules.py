"""Candidate rules: may this chute get one more instance, on this server, now?

Each rule returns a `Rejection` naming the rule that fired (or None). The planner applies the
chute rules once per chute, the server rules once per server, and the pair rules per compatible
(chute, server) group, so every skipped chute or server carries its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gepetto_core.models.validator import is_launch_config_version
from gepetto_core.scheduling.backoff import BackoffState
from gepetto_core.scheduling.policy import PlanPolicy
from gepetto_core.scheduling.snapshot import ChuteView, ServerView, Snapshot

# The validator launches a private chute only for a miner that already runs at least this many
# activated instances of public chutes, on at least this many GPUs in all (else 403).
PRIVATE_MIN_PUBLIC_INSTANCES = 2
PRIVATE_MIN_PUBLIC_GPUS = 16


class Reason(StrEnum):
    # chute rules
    BANNED = "banned"
    NO_CORDS = "no_cords"
    NOT_SCALABLE = "not_scalable"
    UPDATE_IN_PROGRESS = "update_in_progress"
    STALE_VERSION = "stale_version"
    NO_MULTIPLIER = "no_multiplier"
    NOT_WHITELISTED = "not_whitelisted"
    NO_ALLOWANCE = "no_allowance"
    CHUTE_BACKOFF = "chute_backoff"
    PUBLIC_FOOTPRINT = "public_footprint"
    LAUNCH_REFUSED = "launch_refused"
    PROBATION = "probation"
    UNRELIABLE = "unreliable"
    # server rules
    SERVER_LOCKED = "server_locked"
    LOW_DISK = "low_disk"
    SERVER_BACKOFF = "server_backoff"
    PULLS_BUSY = "pulls_busy"
    # pair rules
    VALIDATOR_MISMATCH = "validator_mismatch"
    TEE_MISMATCH = "tee_mismatch"
    GPU_UNSUPPORTED = "gpu_unsupported"
    NOT_ENOUGH_GPUS = "not_enough_gpus"
    PAIR_BACKOFF = "pair_backoff"
    UNPROFITABLE = "unprofitable"
    # plan outcomes
    NO_SERVER = "no_server"
    OUTBID = "outbid"
    ROUND_LIMIT = "round_limit"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


def allowance(chute: ChuteView, snapshot: Snapshot) -> tuple[int, str]:
    """How many more instances the validator will accept from us, minus the ones we started
    that it does not count yet; and how that number came about.

    `scale_allowance` is target - current network-wide, over the instances the validator knows:
    a deployment counts from the moment its pod claims the launch config (it then has an
    instance id), active or still starting. Subtracting only the deployments without one avoids
    counting a starting instance twice. The validator's anti-monopoly rule refuses a miner that
    already holds every current instance once <= 2 slots remain, so such a miner may only take
    the slots above 2.
    """
    free, remaining, monopoly, uncounted = _allowance_terms(chute, snapshot)
    detail = f"scale_allowance {remaining}"
    if monopoly:
        detail += ", we hold every instance (anti-monopoly keeps 2 slots)"
    if uncounted:
        detail += f", {uncounted} of ours starting and not yet counted by the validator"
    return free, detail


def allowance_free(chute: ChuteView, snapshot: Snapshot) -> int:
    """`allowance` without its explanation (the planner asks for every chute, every round)."""
    return _allowance_terms(chute, snapshot)[0]


def _allowance_terms(chute: ChuteView, snapshot: Snapshot) -> tuple[int, int, bool, int]:
    util = chute.utilization
    remaining = 1 if util.scale_allowance is None else util.scale_allowance
    uncounted = snapshot.our_uncounted(chute.chute_id)
    counted = snapshot.our_instances(chute.chute_id) - uncounted
    limit = remaining
    monopoly = counted > 0 and counted >= chute.instance_count
    if monopoly:
        limit = max(0, remaining - 2)
    return max(0, limit - uncounted), remaining, monopoly, uncounted


def needs_public_footprint(chute: ChuteView) -> bool:
    """Whether the validator's private-chute gate covers the chute's launches.

    The gate covers private chutes billed per instance, which are the ones the validator marks
    not preemptible (its `preemptible` is public, or legacy private billing, or owned by the
    chutes user). Chutes older than the launch-config flow (< 0.3.0) start through the legacy
    instance route, which never had the gate. Jobs skip it too (the planner places them apart).
    """
    return not chute.preemptible and is_launch_config_version(chute.chutes_version)


def public_footprint_rejection(chute: ChuteView, snapshot: Snapshot) -> Rejection | None:
    """A private chute waits until we run enough public instances on its validator: asking
    before would be refused (403) every round. An unknown footprint (the validator's instance
    list not fetched yet) rejects nothing: the launch itself would then tell."""
    if not needs_public_footprint(chute):
        return None
    footprint = snapshot.public_footprint(chute.validator)
    if footprint is None:
        return None
    if (
        footprint.instances >= PRIVATE_MIN_PUBLIC_INSTANCES
        and footprint.gpus >= PRIVATE_MIN_PUBLIC_GPUS
    ):
        return None
    return Rejection(
        Reason.PUBLIC_FOOTPRINT,
        f"private chute: the validator wants at least {PRIVATE_MIN_PUBLIC_INSTANCES} activated"
        f" public instances using {PRIVATE_MIN_PUBLIC_GPUS} or more GPUs first; we run"
        f" {footprint.instances} using {footprint.gpus}",
    )


def chute_rejection(
    chute: ChuteView, snapshot: Snapshot, policy: PlanPolicy, backoff: BackoffState
) -> Rejection | None:
    """Rules for ordinary (non-job) scaling, in the order the official gepetto applies them."""
    banned = ban_rejection(chute)
    if banned is not None:
        return banned
    if not chute.at_remote_version:
        return Rejection(
            Reason.STALE_VERSION, f"local {chute.version} != remote {chute.remote_version}"
        )
    if not chute.has_cords:
        return Rejection(Reason.NO_CORDS, "job-only chute (no cords)")
    if chute.utilization.update_in_progress:
        return Rejection(Reason.UPDATE_IN_PROGRESS, "validator reports a rolling update")
    if not chute.utilization.scalable:
        return Rejection(Reason.NOT_SCALABLE, "validator says not scalable")
    if chute.effective_compute_multiplier <= 0:
        return Rejection(Reason.NO_MULTIPLIER, "effective_compute_multiplier <= 0")
    if policy.whitelist_only and snapshot.whitelist and chute.chute_id not in snapshot.whitelist:
        return Rejection(Reason.NOT_WHITELISTED, "not in the candidate whitelist")
    if allowance_free(chute, snapshot) <= 0:
        return Rejection(Reason.NO_ALLOWANCE, allowance(chute, snapshot)[1])
    footprint = public_footprint_rejection(chute, snapshot)
    if footprint is not None:
        return footprint
    block = backoff.chute_block(chute.chute_id)
    if block is not None:
        return Rejection(Reason.CHUTE_BACKOFF, block.reason)
    refusal = backoff.chute_refusal(chute.chute_id)
    if refusal is not None:
        return Rejection(Reason.LAUNCH_REFUSED, refusal.reason)
    return None


def server_rejection(
    server: ServerView,
    policy: PlanPolicy,
    backoff: BackoffState,
    pending_on_server: int = 0,
) -> Rejection | None:
    locked = lock_rejection(server)
    if locked is not None:
        return locked
    if server.disk_free_gb is not None and server.disk_free_gb < policy.min_disk_gb:
        return Rejection(
            Reason.LOW_DISK, f"{server.disk_free_gb:.0f} GB free < {policy.min_disk_gb:.0f} GB"
        )
    limit = pull_limit(server, policy, backoff)
    if limit is None or pending_on_server < limit:
        return None
    block = backoff.server_block(server.server_id)
    if block is None:
        return Rejection(Reason.PULLS_BUSY, f"{pending_on_server} deployments already starting")
    if limit == 0:
        return Rejection(Reason.SERVER_BACKOFF, block.reason)
    return Rejection(
        Reason.SERVER_BACKOFF,
        f"{block.reason}; probing {limit} deployment(s) at a time, "
        f"{pending_on_server} still starting",
    )


def pull_limit(server: ServerView, policy: PlanPolicy, backoff: BackoffState) -> int | None:
    """How many deployments may be starting on the server at once (None = no limit): the
    policy's pull limit, capped by the probe allowance while the server is in back-off."""
    limit = policy.max_pulls_per_server
    if backoff.server_block(server.server_id) is not None:
        probes = policy.backoff.fenced_server_probes
        return probes if limit is None else min(limit, probes)
    return limit


def compatibility_rejection(chute: ChuteView, server: ServerView) -> Rejection | None:
    """The static part of the pair rules: same for every server of one (type, TEE, validator)."""
    if server.validator != chute.validator:
        return Rejection(Reason.VALIDATOR_MISMATCH, "server belongs to another validator")
    if server.is_tee != chute.tee:
        want = "a TEE" if chute.tee else "a non-TEE"
        return Rejection(Reason.TEE_MISMATCH, f"chute needs {want} server")
    if server.gpu_type not in chute.supported_gpus:
        return Rejection(Reason.GPU_UNSUPPORTED, f"{server.gpu_type} not supported")
    return None


def pair_rejection(
    chute: ChuteView, server: ServerView, free_gpus: int, backoff: BackoffState
) -> Rejection | None:
    static = compatibility_rejection(chute, server) or gpus_rejection(chute, free_gpus)
    if static is not None:
        return static
    block = backoff.pair_block(chute.chute_id, server.server_id)
    if block is not None:
        return Rejection(Reason.PAIR_BACKOFF, block.reason)
    return None


def ban_rejection(chute: ChuteView) -> Rejection | None:
    if chute.ban_reason:
        return Rejection(Reason.BANNED, f"banned: {chute.ban_reason}")
    return None


def lock_rejection(server: ServerView) -> Rejection | None:
    if server.locked:
        return Rejection(Reason.SERVER_LOCKED, "server is locked")
    return None


def gpus_rejection(chute: ChuteView, free_gpus: int) -> Rejection | None:
    if free_gpus < chute.gpu_count:
        return Rejection(
            Reason.NOT_ENOUGH_GPUS, f"{free_gpus} free verified GPUs < {chute.gpu_count}"
        )
    return None


def deploy_rejection(chute: ChuteView, server: ServerView) -> Rejection | None:
    """The guard every deploy passes, the operator's and the planner's alike: the placement
    rules that hold whatever the round (ban, lock, validator, TEE, GPU type, free GPUs). Version,
    allowance, back-off and value are the planner's to weigh; an operator may deploy past them."""
    return (
        ban_rejection(chute)
        or lock_rejection(server)
        or compatibility_rejection(chute, server)
        or gpus_rejection(chute, len(server.free_gpu_ids()))
    )
