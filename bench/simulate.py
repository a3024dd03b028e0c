"""48 hours from an empty fleet, one-minute ticks, three placement policies on the same world.

World rules (`docs/scheduling.md#benchmark`):
- an instance starts in U(5-20) / U(12-35) / U(25-60) minutes for 1-2 / 4 / 8 GPUs;
- it fails with the hidden chute x server x pair probability, dying at a random moment before
  the end of its first hour after activation (or before activating at all);
- it earns `multiplier` per hour once active plus a 0.3x start-up credit (<= 1.5 h), but only if
  it is still alive at the end, lived >= 1 h after activation, or was removed by the validator;
- the validator keeps a target instance count per chute (other miners hold some, all of them
  active) and gates each launch config with `check_public_capacity` of the validator sandbox
  (`docs/protocol.md#capacity`): allowed while the chute has no active instance and
  total <= target + 2,
  else 423 once total >= target, or to a miner holding every instance once <= 2 slots remain;
- an instance counts for the validator once its pod claims the launch config, a quarter
  of the way into its start-up (image pull and container start; an assumption); the claim
  re-checks the gate, and a refused claim ends the pod (a failed deploy, its GPUs idle till then);
- `/chutes/utilization` reports `scale_allowance = max(0, target - total)` over claimed instances
  (`docs/protocol.md#read-endpoints`), so launches not yet claimed are for each policy to subtract;
- established instances (>= 63 min) are removed at random, hazard 1/24 h (validator downscale).
Those are the defaults of `bench.assumptions.Assumptions`; each is a dimension of the sweep
(`bench.sweep`): share of scalable chutes, downscale rate, failure and start-up scales, claim
timing, bounties claimed once and decaying, targets and other miners that follow traffic every
30 min, a prefilled steady-state start. `Assumptions()` reproduces the old world bit for bit.
Profit counts the GPU cost of the GPUs our instances hold (elastic fleet) against
lambda = $4 per multiplier-hour.

Policies (re-implemented from their published rules):
- `fork`: every 5 min one (chute, server) pair with the best metrics gain / (cost x gpus);
  utilisation and metrics cached for 4 min; a chute whose deployment died (or whose launch was
  refused) within 16 min of its last creation is skipped for 1 h (see `Fork` for every rule).
  `Fork(stall_free=True, tee_matched=True)` removes the two defects the synthetic world
  triggers most (the 423 stall and TEE chutes on non-TEE servers): the honest comparison.
- `official`: every 15 s the chute with the best multiplier / (cost x gpus) that has no pending
  deployment and is scalable, on one of the two cheapest-then-tightest servers at random; with
  options for the real cycle latency, the bounty-preemption event path, failure memory and
  multiplier-only ranking (see `Official`).
- `gepetto`: `plan_round` every minute with the service's default policy (at most 24 deploys
  per round, no pull limit per server), the failure ledger for back-off and reliability and
  sunk GPU cost (kappa = 0); the planner's preemptions carried out as the autoscaler does
  (launch token first), as in the service, where preemption is on by default
  (`Gepetto(preemption=False)` turns it off). `Gepetto(tuned=False)` is the service exactly
  as shipped (GPU cost counted), which the sweep reports; the default keeps the earlier
  benchmark's settings fitted to this simulator, so its figures reproduce.

Every launch draws its start-up time, fate and downscale time from its own generator keyed by
(seed, chute, server, how many times that pair was launched before): common random numbers, so
two policies that make the same choice meet the same world and the comparison measures choices,
not luck. Trajectories still diverge once choices differ: variants that should be equivalent
land within about +-0.7 % multiplier-hours of each other on one fleet, so compare across seeds.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.assumptions import RECOMPUTE_EVERY, Assumptions
from bench.fleets import Truth, World
from gepetto_core.config import load_settings
from gepetto_core.scheduling import (
    ChuteUtilization,
    ChuteView,
    DeploymentView,
    FailureRecord,
    GpuView,
    PlanPolicy,
    PreemptionRecord,
    RoundPlan,
    ServerView,
    Snapshot,
    plan_round,
)
from gepetto_core.services.planning_input import observed_startup_minutes, plan_policy
from gepetto_sandbox.validator.rules import check_public_capacity

START = datetime(2026, 6, 1, tzinfo=UTC)
HOURS = 48
DOWNSCALE_PER_MIN = 1.0 / (24 * 60)
ESTABLISHED = 63  # minutes after activation before the validator's downscale may pick it
# The fork's Reconciler: every 15 min, deleting deployments still initialising after 35 min.
RECONCILE_EVERY = 15
MAX_INIT_AGE = 35
NEVER = 10**9  # minutes: an instance that never activates
HOTKEY = "us"  # the simulated miner; other miners appear only as counts
DOLLARS_PER_MULTIPLIER_HOUR = PlanPolicy().dollars_per_multiplier_hour  # profit's lambda
FILL_MINUTES = 6 * 60  # the "fill" part of a run, for attribution; the rest is steady state


def world_under(world: World, a: Assumptions) -> World:
    """A private copy of `world` with `a`'s failure and start-up scales and its floor on the
    targets of chutes nobody runs applied (the fleet's own draws are unchanged, so the cells of
    the sweep share fleets)."""
    truth = world.truth
    if a.failure_scale != 1.0 or a.startup_scale != 1.0:
        cap = 0.95

        def scaled(d: dict[Any, float]) -> dict[Any, float]:
            return {k: min(cap, v * a.failure_scale) for k, v in d.items()}

        truth = Truth(
            chute_fail=scaled(truth.chute_fail),
            server_fail=scaled(truth.server_fail),
            pair_fail=scaled(truth.pair_fail),
            startup_range={
                k: (lo * a.startup_scale, hi * a.startup_scale)
                for k, (lo, hi) in truth.startup_range.items()
            },
        )
    targets = dict(world.targets)
    if a.cold_target:
        for cid, others in world.others.items():
            if others == 0:
                targets[cid] = max(a.cold_target, targets[cid])
    return replace(
        world,
        chutes=list(world.chutes),
        truth=truth,
        targets=targets,
        others=dict(world.others),
    )


@dataclass(eq=False, slots=True)
class Inst:
    dep_id: str
    chute_id: str
    server_id: str
    gpu_ids: list[str]
    g: int
    m: float
    bounty: float  # the bounty part of m, paid only for the first 2 h after activation
    created: int
    activate_at: int
    death_at: int | None  # a failing instance dies then
    claim_at: int  # the pod claims its launch config: from then on the validator counts it
    downscale_at: int  # the validator's random downscale picks it then (if still alive)
    ended: int | None = None
    validator_removed: bool = False
    claimed: bool = False
    counted_active: bool = False
    refused_at_claim: bool = False
    prefilled: bool = False  # running before the window: earns from minute 0, no start-up
    bounty_decays: bool = False  # the bounty part falls linearly to nothing over 2 h

    def active(self, now: int) -> bool:
        return now >= self.activate_at and (self.ended is None or self.ended > self.activate_at)


@dataclass
class Result:
    policy: str
    multiplier_hours: float = 0.0
    wasted_gpu_hours: float = 0.0
    failed_deploys: int = 0
    deploys: int = 0
    refused_423: int = 0
    refused_at_claim: int = 0  # pods whose launch-config claim got a 423 (also failed deploys)
    time_to_fill_min: int | None = None
    preemptions: int = 0
    busy_fraction: float = 0.0
    decide_seconds: float = 0.0
    # GPU cost of the GPUs our instances held ($, each server's hourly cost per GPU): the
    # avoidable cost of an elastic fleet. Profit = lambda x multiplier-hours - this.
    gpu_cost: float = 0.0
    # The multiplier our active instances held, integrated over the fill (first 6 h) and the
    # rest of the run (multiplier-hours as held, before the earning rules; for attribution).
    held_fill: float = 0.0
    held_steady: float = 0.0

    @property
    def profit(self) -> float:
        return DOLLARS_PER_MULTIPLIER_HOUR * self.multiplier_hours - self.gpu_cost


@dataclass
class Sim:
    world: World
    seed: int
    now: int = 0
    free: dict[str, list[str]] = field(default_factory=dict)
    live: list[Inst] = field(default_factory=list)
    ended: list[Inst] = field(default_factory=list)
    ours: dict[str, int] = field(default_factory=dict)  # our instances, pending included
    claimed: dict[str, int] = field(default_factory=dict)  # ours the validator counts
    active_ours: dict[str, int] = field(default_factory=dict)
    result: Result = field(default_factory=lambda: Result(""))
    next_id: int = 0
    launches: dict[tuple[str, str], int] = field(default_factory=dict)
    assumptions: Assumptions = field(default_factory=Assumptions)
    cost_rate: float = 0.0  # $/h of the GPUs our instances hold now
    # Bounty events (minute, chute) for policies that listen to them (the official miner).
    bounty_events: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.world = world_under(self.world, self.assumptions)
        self.free = {s.server_id: [g.gpu_id for g in s.gpus] for s in self.world.servers}
        self.total_gpus = sum(len(s.gpus) for s in self.world.servers)
        self.servers = {s.server_id: s for s in self.world.servers}
        self.chutes = {c.chute_id: c for c in self.world.chutes}
        self.base_targets = dict(self.world.targets)
        self.base_others = dict(self.world.others)
        self.plain = {
            c.chute_id: c.effective_compute_multiplier / c.bounty_boost for c in self.world.chutes
        }
        self.traffic = {c.chute_id: 0.0 for c in self.world.chutes}
        self.bounty_events = [(0, c.chute_id) for c in self.world.chutes if c.bounty_boost > 1]
        self.downscale_per_min = (
            DOWNSCALE_PER_MIN
            if self.assumptions.downscale_per_hour == Assumptions().downscale_per_hour
            else self.assumptions.downscale_per_hour / 60
        )
        if self.assumptions.prefill > 0:
            self._prefill(self.assumptions.prefill)

    def set_multiplier(self, chute_id: str, bounty: float) -> None:
        """The validator posts (bounty > 1) or withdraws (1.0) a bounty on a chute."""
        c = self.chutes[chute_id]
        plain = self.plain[chute_id]
        c = replace(c, bounty_boost=bounty, effective_compute_multiplier=round(plain * bounty, 4))
        self.chutes[chute_id] = c
        for i, old in enumerate(self.world.chutes):
            if old.chute_id == chute_id:
                self.world.chutes[i] = c
                break

    def _prefill(self, share: float) -> None:
        """Established instances of chutes with room, on random compatible servers, until
        `share` of the GPUs are held: a steady-state start (the same for every policy)."""
        rng = random.Random(f"{self.seed}/prefill")
        goal = int(self.total_gpus * share)
        used = 0
        servers = rng.sample(self.world.servers, len(self.world.servers))
        for _ in range(20 * len(servers)):
            if used >= goal:
                break
            server = rng.choice(servers)
            free = self.free[server.server_id]
            options = [
                c
                for c in self.world.chutes
                if server.gpu_type in c.supported_gpus
                and server.is_tee == c.tee
                and c.gpu_count <= len(free)
                and self.scale_allowance(c.chute_id) > 0
            ]
            if not options:
                continue
            chute = rng.choice(options)
            gpu_ids = free[: chute.gpu_count]
            del free[: chute.gpu_count]
            activated = -round(rng.uniform(70, 600))
            life = math.log(1.0 - rng.random()) / math.log(1.0 - self.downscale_per_min)
            self.next_id += 1
            inst = Inst(
                f"dep-{self.next_id}",
                chute.chute_id,
                server.server_id,
                gpu_ids,
                chute.gpu_count,
                self.plain[chute.chute_id],
                1.0,
                activated - 15,
                activated,
                None,
                activated - 10,
                int(life),
                claimed=True,
                counted_active=True,
                prefilled=True,
            )
            self.live.append(inst)
            cid = chute.chute_id
            self.ours[cid] = self.ours.get(cid, 0) + 1
            self.claimed[cid] = self.claimed.get(cid, 0) + 1
            self.active_ours[cid] = self.active_ours.get(cid, 0) + 1
            self.cost_rate += server.hourly_cost * chute.gpu_count
            used += chute.gpu_count

    def recompute(self) -> None:
        """The validator recomputes targets every RECOMPUTE_EVERY minutes (dynamic world):
        each chute's traffic level walks (log-AR(1)), its target and the other miners'
        instances follow it; and under `once_decaying` bounties, a few new bounties appear."""
        epoch = self.now // RECOMPUTE_EVERY
        rng = random.Random(f"{self.seed}/recompute/{epoch}")
        if self.assumptions.dynamic:
            for cid in self.base_targets:
                x = 0.8 * self.traffic[cid] + rng.gauss(0.0, 0.25)
                self.traffic[cid] = x
                level = math.exp(x)
                target = max(1, round(self.base_targets[cid] * level))
                others = round(self.base_others[cid] * level * rng.uniform(0.8, 1.2))
                self.world.targets[cid] = target
                self.world.others[cid] = max(0, min(target, others))
        if self.assumptions.bounty == "once_decaying":
            for cid, c in list(self.chutes.items()):
                if c.bounty_boost == 1.0 and rng.random() < 0.002:
                    self.set_multiplier(cid, round(rng.uniform(1.1, 1.5), 3))
                    self.bounty_events.append((self.now, cid))

    # --- the validator ------------------------------------------------------------------------
    def total(self, chute_id: str) -> int:
        """Instances the validator counts: other miners' plus our claimed ones."""
        return self.world.others[chute_id] + self.claimed.get(chute_id, 0)

    def scale_allowance(self, chute_id: str) -> int:
        """`/chutes/utilization`'s `scale_allowance`: target - total, floored at 0."""
        return max(0, self.world.targets[chute_id] - self.total(chute_id))

    def accepts(self, chute_id: str) -> bool:
        """The launch-config gate, the same function the validator sandbox applies."""
        refusal = check_public_capacity(
            chute_id,
            hotkey=HOTKEY,
            total=self.total(chute_id),
            active=self.world.others[chute_id] + self.active_ours.get(chute_id, 0),
            mine=self.claimed.get(chute_id, 0),
            target=self.world.targets[chute_id],
            rolling_permitted=None,
        )
        return refusal is None

    # --- actions ------------------------------------------------------------------------------
    def launch(self, chute_id: str, server_id: str, gpu_ids: list[str] | None = None) -> str:
        chute = self.chutes[chute_id]
        server = self.servers[server_id]
        free = self.free[server_id]
        if len(free) < chute.gpu_count or server.gpu_type not in chute.supported_gpus:
            return "no_gpu"
        if not self.accepts(chute_id):
            self.result.refused_423 += 1
            return "423"
        # Only the fork ignores the TEE flag: the launch config is granted (it names no server),
        # but the instance can never attest, so it never activates; the fork's Reconciler
        # removes it at its first 15-minute tick past MAX_INIT_AGE (35 min).
        never_attests = server.is_tee != chute.tee
        if gpu_ids is None or not set(gpu_ids) <= set(free):
            gpu_ids = free[: chute.gpu_count]
        for gid in gpu_ids:
            free.remove(gid)
        # Common random numbers: the k-th launch of a (chute, server) pair has the same start-up,
        # fate and downscale time under every policy, so policies differ by their choices only.
        k = self.launches.get((chute_id, server_id), 0)
        self.launches[(chute_id, server_id)] = k + 1
        fate = random.Random(f"{self.seed}/{chute_id}/{server_id}/{k}")
        lo, hi = self.world.truth.startup_range[chute_id]
        startup = round(fate.uniform(lo, hi))
        claim = self.assumptions.claim_fraction
        claim_at = self.now + max(1, startup // 4 if claim == 0.25 else int(startup * claim))
        fails = fate.random() < self.world.truth.p_fail(chute_id, server_id)
        death = self.now + fate.randint(2, startup + 50) if fails else None
        # Established after 63 min, then removed with hazard DOWNSCALE_PER_MIN per minute.
        established = math.log(1.0 - fate.random()) / math.log(1.0 - self.downscale_per_min)
        downscale_after = ESTABLISHED + int(established)
        if never_attests:
            death = -(-(self.now + MAX_INIT_AGE) // RECONCILE_EVERY) * RECONCILE_EVERY
            startup = NEVER
        self.next_id += 1
        inst = Inst(
            f"dep-{self.next_id}",
            chute_id,
            server_id,
            list(gpu_ids),
            chute.gpu_count,
            chute.effective_compute_multiplier,
            chute.bounty_boost,
            self.now,
            self.now + startup,
            death,
            claim_at,
            self.now + startup + downscale_after,
        )
        if self.assumptions.bounty == "once_decaying" and chute.bounty_boost > 1:
            inst.bounty_decays = True
        self.live.append(inst)
        self.cost_rate += server.hourly_cost * chute.gpu_count
        self.ours[chute_id] = self.ours.get(chute_id, 0) + 1
        self.result.deploys += 1
        return "ok"

    def undeploy(self, dep_id: str) -> bool:
        """The miner removes one of its instances (a preemption). False: no such instance."""
        for inst in self.live:
            if inst.dep_id == dep_id:
                self.live.remove(inst)
                self._end(inst, validator_removed=False)
                return True
        return False

    def _end(self, inst: Inst, validator_removed: bool) -> None:
        inst.ended = self.now
        inst.validator_removed = validator_removed
        self.free[inst.server_id].extend(inst.gpu_ids)
        self.cost_rate -= self.servers[inst.server_id].hourly_cost * inst.g
        self.ours[inst.chute_id] -= 1
        if inst.claimed:
            self.claimed[inst.chute_id] -= 1
        if inst.counted_active:
            self.active_ours[inst.chute_id] -= 1
        self.ended.append(inst)

    def _claim(self, inst: Inst) -> bool:
        """The pod claims its launch config; the validator re-checks capacity first."""
        if not self.accepts(inst.chute_id):
            inst.refused_at_claim = True
            self.result.refused_at_claim += 1
            return False
        inst.claimed = True
        self.claimed[inst.chute_id] = self.claimed.get(inst.chute_id, 0) + 1
        return True

    def tick_world(self) -> None:
        keep: list[Inst] = []
        for inst in self.live:
            dies_first = inst.death_at is not None and inst.death_at <= self.now
            claims_now = not inst.claimed and self.now >= inst.claim_at and not dies_first
            if claims_now and not self._claim(inst):
                self._end(inst, validator_removed=False)
                continue
            if inst.claimed and not inst.counted_active and self.now >= inst.activate_at:
                inst.counted_active = True
                self.active_ours[inst.chute_id] = self.active_ours.get(inst.chute_id, 0) + 1
                if inst.bounty_decays:
                    self._claim_bounty(inst)
            if inst.death_at is not None and self.now >= inst.death_at:
                self._end(inst, validator_removed=False)
            elif self.now >= inst.downscale_at:
                self._end(inst, validator_removed=True)
            else:
                keep.append(inst)
        self.live = keep

    def _claim_bounty(self, inst: Inst) -> None:
        """Under `once_decaying` the first of our instances of the chute to activate takes the
        bounty; later ones (and those started before, still pending) earn the plain rate."""
        if self.chutes[inst.chute_id].bounty_boost > 1:
            self.set_multiplier(inst.chute_id, 1.0)
            return
        inst.bounty_decays = False
        inst.m = inst.m / inst.bounty
        inst.bounty = 1.0

    # --- scoring ------------------------------------------------------------------------------
    def earning_minutes(self, inst: Inst) -> int | None:
        """Minutes `inst` was active, if it earns at all (by now): still alive, removed by the
        validator, or lived an hour after activation. None: it earns nothing."""
        stop = inst.ended if inst.ended is not None else self.now
        if not (stop > inst.activate_at and inst.activate_at <= self.now):
            return None
        life_after = stop - inst.activate_at
        if inst.ended is None or inst.validator_removed or life_after >= 60:
            return life_after
        return None

    def finish(self, busy_minutes: float) -> Result:
        end = self.now
        r = self.result
        for inst in self.ended + self.live:
            stop = inst.ended if inst.ended is not None else end
            life_after = self.earning_minutes(inst)
            if life_after is not None and inst.prefilled:
                r.multiplier_hours += inst.m * (stop - max(0, inst.activate_at)) / 60.0
            elif life_after is not None:
                startup = min(inst.activate_at - inst.created, 90)
                boosted = min(life_after, 120)
                plain = inst.m / inst.bounty
                if inst.bounty_decays:  # the boost falls from m - plain to 0 over 120 min
                    extra = (inst.m - plain) * (boosted - boosted * boosted / 240.0)
                    earned = plain * (life_after + 0.3 * startup) + extra
                else:
                    earned = inst.m * (boosted + 0.3 * startup) + plain * (life_after - boosted)
                r.multiplier_hours += earned / 60.0
            elif inst.ended is not None:
                r.failed_deploys += 1
                r.wasted_gpu_hours += inst.g * (stop - inst.created) / 60.0
        r.busy_fraction = busy_minutes / (self.total_gpus * max(1, end))
        return r

    def busy_gpus(self) -> int:
        return self.total_gpus - sum(len(f) for f in self.free.values())


# --- policies -------------------------------------------------------------------------------


# The official autoscaler sleeps 15 s *after* each run, and a run first refreshes the
# validator's chutes, images, nodes, instances and metrics and then makes its deploy call: an
# assumption of 10 s for the refresh and 5 s for the deploy makes a 30 s cycle.
OFFICIAL_CYCLE_SECONDS = 30.0
FAILURE_MEMORY_MINUTES = 60  # `official_memory`: how long a failed (chute, server) is avoided


class Official:
    """The official miner's `_autoscale` (spec `chutes-miner.md` §5.2-5.5), with options:

    - `cycle_seconds`: 15 is the bare sleep (the earlier benchmark); OFFICIAL_CYCLE_SECONDS
      adds the refresh and deploy latency of a real cycle;
    - `bounty_events`: the `bounty_change` handler, `scale_chute(chute, 1, preempt=True)` when
      we hold no deployment of the chute, with `preempting_deploy`'s victim rules;
    - `failure_memory`: a (chute, server) pair whose instance died without earning is avoided
      for FAILURE_MEMORY_MINUTES, a chute that failed on two servers within 2 h as well;
    - `rank`: "value" = multiplier / (hourly cost x GPUs), "multiplier" = the raw multiplier
      (the other strategy the official source names).
    """

    per_minute = 4  # one decision per 15 s (cycle_seconds = 15)

    def __init__(
        self,
        rng_seed: int = 11,
        *,
        cycle_seconds: float = 15.0,
        bounty_events: bool = False,
        failure_memory: bool = False,
        rank: str = "value",
        name: str = "official",
    ) -> None:
        self.name = name
        self.rng = random.Random(rng_seed)  # picks one of the two best servers
        self.by_cost: dict[str, list[ServerView]] = {}
        self.cycle_seconds = cycle_seconds
        self.credit = 0.0
        self.bounty_events = bounty_events
        self.seen_events = 0
        self.failure_memory = failure_memory
        self.seen_ended = 0
        self.pair_failed: dict[tuple[str, str], int] = {}
        self.chute_failures: dict[str, list[tuple[int, str]]] = {}
        self.rank = rank
        self.preempted: set[str] = set()  # our own removals are not failures

    def decide(self, sim: Sim) -> None:
        if not self.by_cost:
            for chute in sim.world.chutes:
                self.by_cost[chute.chute_id] = sorted(
                    (
                        s
                        for s in sim.world.servers
                        if s.gpu_type in chute.supported_gpus and s.is_tee == chute.tee
                    ),
                    key=lambda s: s.hourly_cost,
                )
        if self.failure_memory:
            self._remember_failures(sim)
        if self.bounty_events:
            self._bounty_events(sim)
        if self.cycle_seconds == 15.0:
            cycles = self.per_minute
        else:
            self.credit += 60.0 / self.cycle_seconds
            cycles = int(self.credit)
            self.credit -= cycles
        for _ in range(cycles):
            if not self._once(sim):
                return

    def _remember_failures(self, sim: Sim) -> None:
        for inst in sim.ended[self.seen_ended :]:
            if inst.validator_removed or inst.ended is None or inst.dep_id in self.preempted:
                continue
            if sim.earning_minutes(inst) is None:
                self.pair_failed[(inst.chute_id, inst.server_id)] = inst.ended
                self.chute_failures.setdefault(inst.chute_id, []).append(
                    (inst.ended, inst.server_id)
                )
        self.seen_ended = len(sim.ended)

    def _avoided(self, sim: Sim, chute_id: str, server_id: str | None) -> bool:
        if not self.failure_memory:
            return False
        if server_id is not None:
            at = self.pair_failed.get((chute_id, server_id))
            return at is not None and sim.now - at < FAILURE_MEMORY_MINUTES
        recent = {srv for at, srv in self.chute_failures.get(chute_id, []) if sim.now - at < 120}
        last = max((at for at, _ in self.chute_failures.get(chute_id, [])), default=-(10**9))
        return len(recent) >= 2 and sim.now - last < FAILURE_MEMORY_MINUTES

    def _bounty_events(self, sim: Sim) -> None:
        """`bounty_change`: if we hold no deployment of the chute, scale it to one, preempting
        when no server has room (`preempting_deploy`)."""
        events = sim.bounty_events
        while self.seen_events < len(events) and events[self.seen_events][0] <= sim.now:
            cid = events[self.seen_events][1]
            self.seen_events += 1
            if sim.ours.get(cid, 0) == 0 and sim.chutes[cid].bounty_boost > 1:
                self._scale_with_preemption(sim, cid)

    def _scale_with_preemption(self, sim: Sim, cid: str) -> None:
        chute = sim.chutes[cid]
        g = chute.gpu_count
        fits = [s for s in self._servers(cid) if len(sim.free[s.server_id]) >= g]
        pool = sorted(fits[:4], key=lambda s: (s.hourly_cost, len(sim.free[s.server_id])))[:2]
        if pool:
            sim.launch(cid, self.rng.choice(pool).server_id)
            return
        by_server: dict[str, list[Inst]] = {}
        for inst in sim.live:
            by_server.setdefault(inst.server_id, []).append(inst)
        candidates = sorted(
            (s for s in self._servers(cid) if len(s.gpus) >= g),
            key=lambda s: (s.hourly_cost, len(sim.free[s.server_id])),
        )
        proposed: dict[str, int] = {}
        for server in candidates:
            free = len(sim.free[server.server_id])
            marked: list[Inst] = []
            for inst in sorted(by_server.get(server.server_id, []), key=lambda i: i.m):
                if free >= g:
                    break
                other = sim.chutes[inst.chute_id]
                global_count = sim.total(inst.chute_id) - proposed.get(inst.chute_id, 0)
                if (
                    not other.preemptible
                    or inst.chute_id == cid
                    or not inst.active(sim.now)
                    or sim.now - inst.activate_at <= 62
                    or inst.m >= chute.effective_compute_multiplier
                    or global_count <= 1
                ):
                    continue
                marked.append(inst)
                proposed[inst.chute_id] = proposed.get(inst.chute_id, 0) + 1
                free += inst.g
            if free < g:
                continue
            if not sim.accepts(cid):  # the launch token first: a 423 removes nothing
                sim.result.refused_423 += 1
                return
            for inst in marked:
                if sim.undeploy(inst.dep_id):
                    self.preempted.add(inst.dep_id)
            sim.result.preemptions += 1 if marked else 0
            sim.launch(cid, server.server_id)
            return

    def _servers(self, cid: str) -> list[ServerView]:
        return self.by_cost[cid]

    def _once(self, sim: Sim) -> bool:
        """One `_autoscale` cycle: rank, then try chutes in order until one deploys."""
        most_free = max((len(f) for f in sim.free.values()), default=0)
        if most_free == 0:
            return False
        pending = {i.chute_id for i in sim.live if sim.now < i.activate_at}
        ranked: list[tuple[float, str, str]] = []
        for chute in sim.world.chutes:
            cid = chute.chute_id
            g = chute.gpu_count
            if g > most_free or cid in pending or sim.scale_allowance(cid) <= 0:
                continue  # `scalable` comes from /chutes/utilization, refreshed every cycle
            # Cheapest first, then tightest fit; the two best, one of them at random.
            if self._avoided(sim, cid, None):
                continue
            fits = [
                s
                for s in self.by_cost[cid]
                if len(sim.free[s.server_id]) >= g and not self._avoided(sim, cid, s.server_id)
            ]
            pool = sorted(fits[:4], key=lambda s: (s.hourly_cost, len(sim.free[s.server_id])))[:2]
            if not pool:
                continue
            server = self.rng.choice(pool)
            if self.rank == "multiplier":
                value = chute.effective_compute_multiplier
            else:
                value = chute.effective_compute_multiplier / (server.hourly_cost * g)
            ranked.append((value, cid, server.server_id))
        ranked.sort(reverse=True)
        return any(sim.launch(cid, sid) == "ok" for _, cid, sid in ranked)


# The fork values a private chute (no metrics of its own) at 3600 x its multiplier x this.
FORK_PRIVATE_MULTIPLIER = 16.0


def fork_gain(chute: ChuteView) -> float | None:
    """The fork's `potential_gain`: metered compute plus rate-limited demand, split over the
    instances that would exist. None when there are no metrics (the fork skips such chutes)."""
    if not chute.preemptible:
        return 3600.0 * chute.effective_compute_multiplier * FORK_PRIVATE_MULTIPLIER
    m = chute.metrics
    if m is None:
        return None
    consumed = m.total_compute_time * m.compute_multiplier
    rate_limited = m.rate_limit_count / 5.0 if chute.instance_count >= 5 else m.rate_limit_count
    per_invocation = consumed / m.total_invocations if m.total_invocations > 0 else 0.0
    return (consumed + per_invocation * rate_limited) / (chute.instance_count + 1)


class Fork:
    """The community fork (hualiu312/chutes-dev), rule by rule:

    - RemoteSynchro every 4 min caches utilisation (`scalable`) and metrics (`instance_count`,
      which divides the gain); the Autoscaler uses that cache every 5 min and deploys exactly one
      (chute, server) pair: every pair with enough free supported GPUs is scored
      `potential_gain / (hourly_cost * gpu_count)` (private: `3600 * m * 16 / ...`), with no TEE
      match, no disk check and no pending guard.
    - Per-chute failure trace, in memory: `created_at` on a successful deploy; `deleted_at` on
      every undeploy **and on every failed deploy** (a launch-config 423 raises inside `deploy`,
      whose `except` records the deletion). At that moment `failed = deleted_at - created_at <=
      16 min`, or False when the chute has no `created_at`. A failed flag is cleared once it is
      more than 1 h past `deleted_at`.
    - Choice: the best value among pairs of chutes not marked failed; if every candidate is
      failed, the one deleted earliest (ties: higher value).
    - Deaths are noticed by the Reconciler (every 15 min), because `_instance_deleted` passes an
      instance id as a deployment id: the trace's `deleted_at` is that reconcile tick.
    - A TEE chute on a non-TEE server gets its launch config (the fork sends no server id) but
      never attests; the Reconciler removes it after MAX_INIT_AGE = 35 min (`Sim.launch`).
    """

    failure_minutes = 16
    failed_for_minutes = 60
    sync_every = 4
    scale_every = 5

    def __init__(
        self, *, stall_free: bool = False, tee_matched: bool = False, name: str = "fork"
    ) -> None:
        # `stall_free`: a launch refused with a 423 marks the chute failed for an hour even when
        # the fork never created it (as written, `failed` needs a `created_at`, so a refused top
        # chute with no other miners is retried every 5 minutes and stalls the fork).
        # `tee_matched`: only servers whose TEE flag matches the chute's (as written, a TEE
        # chute lands on non-TEE servers and never attests).
        self.name = name
        self.stall_free = stall_free
        self.tee_matched = tee_matched
        self.cached_scalable: dict[str, bool] = {}
        self.cached_count: dict[str, int] = {}
        self.created: dict[str, int | None] = {}
        self.deleted: dict[str, int] = {}
        self.failed: dict[str, bool] = {}
        self.seen_ended = 0

    def trace_deleted(self, chute_id: str, at: int, refused: bool = False) -> None:
        self.deleted[chute_id] = at
        created = self.created.get(chute_id)
        self.failed[chute_id] = (created is not None and at - created <= self.failure_minutes) or (
            refused and self.stall_free
        )
        if created is None:
            self.created[chute_id] = None

    def is_failed(self, chute_id: str, now: int) -> bool:
        if self.failed.get(chute_id) and now - self.deleted[chute_id] > self.failed_for_minutes:
            self.failed[chute_id] = False
        return self.failed.get(chute_id, False)

    def decide(self, sim: Sim) -> None:
        if sim.now % self.sync_every == 0:
            self.cached_scalable = {c: sim.scale_allowance(c) > 0 for c in sim.chutes}
            self.cached_count = {c: sim.world.others[c] + sim.ours.get(c, 0) for c in sim.chutes}
        if sim.now % RECONCILE_EVERY == 0:
            for inst in sim.ended[self.seen_ended :]:
                self.trace_deleted(inst.chute_id, sim.now)
            self.seen_ended = len(sim.ended)
        if sim.now % self.scale_every != 0:
            return
        unfailed: list[tuple[float, str, str]] = []
        failed: list[tuple[int, float, str, str]] = []
        for chute in sim.world.chutes:
            cid = chute.chute_id
            if not self.cached_scalable.get(cid, False):
                continue
            count = self.cached_count.get(cid, 0)
            gain = fork_gain(replace(chute, instance_count=count))
            if gain is None:
                continue
            is_failed = self.is_failed(cid, sim.now)
            for s in sim.world.servers:  # no TEE match, no disk check in the fork
                if (
                    s.gpu_type in chute.supported_gpus
                    and len(sim.free[s.server_id]) >= chute.gpu_count
                    and (not self.tee_matched or s.is_tee == chute.tee)
                ):
                    value = gain / (s.hourly_cost * chute.gpu_count)
                    if is_failed:
                        failed.append((self.deleted[cid], -value, cid, s.server_id))
                    else:
                        unfailed.append((-value, cid, s.server_id))
        if unfailed:
            _, cid, sid = min(unfailed)
        elif failed:
            _, _, cid, sid = min(failed)
        else:
            return
        if sim.launch(cid, sid) == "ok":
            self.created[cid] = sim.now
        else:
            # The launch-config error lands in deploy's except.
            self.trace_deleted(cid, sim.now, refused=True)


class Idle:
    """No policy at all: keeps what the fleet started with and deploys nothing. Not a baseline
    but a reference: in a prefilled start it is what every policy earns without trying, so it
    bounds how far apart two policies can be (`bench.grid`'s fork figures)."""

    def __init__(self, name: str = "idle") -> None:
        self.name = name

    def decide(self, sim: Sim) -> None:
        return None


class Gepetto:
    def __init__(
        self,
        preemption: bool = True,
        rng_seed: int = 5,
        *,
        tuned: bool = True,
        backoff: bool = True,
        cost_weight: float | None = None,
        name: str = "gepetto",
    ) -> None:
        # `tuned` (the earlier benchmark): the service's default settings changed where this
        # world differs: sunk GPU cost; and an instance that dies before activation + 1 h earns
        # nothing while start-up takes up to an hour, so deaths within 2 h of creation are
        # failures and two healthy hours are forgiveness. Those two windows were fitted to the
        # simulator's own death model (issue #25), so the sweep runs `tuned=False`: the service
        # exactly as shipped, GPU cost counted. `backoff=False` turns the failure back-off off
        # (no death counts as a failure; the reliability estimates still learn). `cost_weight`
        # overrides kappa: 0 = the GPUs' cost ignored (sunk), the setting for an operator who
        # wants multiplier-hours whatever they cost.
        self.name = name
        service = plan_policy(load_settings({}))
        policy = replace(service, preemption=replace(service.preemption, enabled=preemption))
        if tuned:
            policy = replace(
                policy,
                cost_weight=0.0,
                backoff=replace(
                    service.backoff,
                    failure_window=timedelta(minutes=120),
                    healthy_run=timedelta(hours=2),
                ),
            )
        if not backoff:
            policy = replace(
                policy,
                backoff=replace(policy.backoff, failure_window=timedelta(0), earning_delay=None),
            )
        if cost_weight is not None:
            policy = replace(policy, cost_weight=cost_weight)
        self.policy = policy
        self.rng = random.Random(rng_seed)  # breaks exact ties between servers
        self.ledger: list[FailureRecord] = []
        self.seen_ended = 0
        # What the autoscaler service keeps between rounds for the preemption rules.
        self.preempted: set[str] = set()
        self.recent_preemptions: list[PreemptionRecord] = []
        self.proposed: frozenset[tuple[str, str]] = frozenset()
        self.last_plan: RoundPlan | None = None  # for bench.diagnose: why GPUs stayed free

    def _when(self, minute: int) -> datetime:
        return START + timedelta(minutes=minute)

    def decide(self, sim: Sim) -> None:
        for inst in sim.ended[self.seen_ended :]:
            assert inst.ended is not None
            if inst.validator_removed:
                reason = "downscaled"
            elif inst.dep_id in self.preempted:
                reason = "preempted"
            elif inst.refused_at_claim:
                reason = "423"  # the validator refused its claim: capacity, not a failure
            else:
                reason = "crash"
            # The service's ledger keeps the activation time of every end (deployer.py).
            activated = inst.activate_at < inst.ended and (inst.claimed or inst.prefilled)
            self.ledger.append(
                FailureRecord(
                    inst.dep_id,
                    inst.chute_id,
                    inst.server_id,
                    sim.servers[inst.server_id].gpu_type,
                    self._when(inst.created),
                    self._when(inst.ended),
                    reason,
                    counted=reason == "crash",
                    activated_at=self._when(inst.activate_at) if activated else None,
                )
            )
        self.seen_ended = len(sim.ended)
        if not any(sim.free.values()) and not self.policy.preemption.enabled:
            return
        now = self._when(sim.now)
        plan = plan_round(self.snapshot(sim), self.policy, now, self.rng)
        self.last_plan = plan
        for p in plan.placements:
            sim.launch(p.chute_id, p.server_id, list(p.gpu_ids))
        self.proposed = frozenset(
            (pre.placement.chute_id, pre.placement.server_id)
            for pre in plan.preemptions
            if not pre.confirmed
        )
        for pre in plan.preemptions:
            if not pre.confirmed:
                continue
            # The launch token comes first: a 423 removes nothing.
            if not sim.accepts(pre.placement.chute_id):
                sim.result.refused_423 += 1
                continue
            for victim in pre.victims:
                if sim.undeploy(victim):
                    self.preempted.add(victim)
            sim.launch(pre.placement.chute_id, pre.placement.server_id, list(pre.placement.gpu_ids))
            self.recent_preemptions.append(PreemptionRecord(pre.placement.server_id, now))
        sim.result.preemptions += sum(1 for pre in plan.preemptions if pre.confirmed)

    def snapshot(self, sim: Sim) -> Snapshot:
        owner: dict[str, str] = {}
        deployments = []
        running = []
        for inst in sim.live:
            for gid in inst.gpu_ids:
                owner[gid] = inst.dep_id
            active = sim.now >= inst.activate_at
            boosted = active and sim.now - inst.activate_at < 120
            deployments.append(
                DeploymentView(
                    inst.dep_id,
                    inst.chute_id,
                    inst.server_id,
                    tuple(inst.gpu_ids),
                    self._when(inst.created),
                    self._when(inst.activate_at) if active else None,
                    active=active,
                    preemptible=sim.chutes[inst.chute_id].preemptible,
                    compute_multiplier=inst.m if boosted else inst.m / inst.bounty,
                    instance_id=inst.dep_id if inst.claimed else None,
                )
            )
            running.append(
                FailureRecord(
                    inst.dep_id,
                    inst.chute_id,
                    inst.server_id,
                    "",
                    self._when(inst.created),
                    None,
                    activated_at=self._when(inst.activate_at) if active else None,
                )
            )
        servers = tuple(
            replace(s, gpus=tuple(GpuView(g.gpu_id, True, owner.get(g.gpu_id)) for g in s.gpus))
            for s in sim.world.servers
        )
        # Per chute, the median start-up of our instances that activated, as the service
        # observes it (`planning_input.observed_startup_minutes`).
        startup = observed_startup_minutes(deployments, self.ledger)
        chutes = tuple(
            replace(
                c,
                startup_minutes=startup.get(c.chute_id),
                instance_count=sim.total(c.chute_id),
                utilization=ChuteUtilization(
                    scalable=sim.scale_allowance(c.chute_id) > 0,
                    scale_allowance=sim.scale_allowance(c.chute_id),
                ),
            )
            for c in sim.world.chutes
        )
        return Snapshot(
            chutes=chutes,
            servers=servers,
            deployments=tuple(deployments),
            failures=tuple(self.ledger + running),
            recent_preemptions=tuple(
                r for r in self.recent_preemptions if r.at > self._when(sim.now - 6 * 60)
            ),
            proposed_preemptions=self.proposed,
        )


def simulate(
    world: World,
    seed: int,
    policy: Official | Fork | Gepetto | Idle,
    hours: int = HOURS,
    observe: Callable[[Sim], None] | None = None,
    assumptions: Assumptions | None = None,
) -> Result:
    """Run `policy` for `hours`; `observe(sim)` is called after every minute's decisions (for
    `bench.diagnose`, which looks at what each policy holds while it runs)."""
    a = assumptions or Assumptions()
    sim = Sim(world, seed, assumptions=a)
    sim.result = Result(policy.name)
    busy_minutes = 0.0
    fill_goal = 0.9 * sim.total_gpus
    recomputes = a.dynamic or a.bounty != "every_2h"
    for minute in range(hours * 60):
        sim.now = minute
        if recomputes and minute > 0 and minute % RECOMPUTE_EVERY == 0:
            sim.recompute()
        sim.tick_world()
        t = time.perf_counter()
        policy.decide(sim)
        sim.result.decide_seconds += time.perf_counter() - t
        if observe is not None:
            observe(sim)
        busy = sim.busy_gpus()
        busy_minutes += busy
        sim.result.gpu_cost += sim.cost_rate / 60.0
        held = sum(i.m for i in sim.live if i.activate_at <= minute) / 60.0
        if minute < FILL_MINUTES:
            sim.result.held_fill += held
        else:
            sim.result.held_steady += held
        if sim.result.time_to_fill_min is None and busy >= fill_goal:
            sim.result.time_to_fill_min = minute
    sim.now = hours * 60
    return sim.finish(busy_minutes)
