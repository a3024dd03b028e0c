"""Synthetic fleets and chute catalogs, described in `docs/scheduling.md#benchmark`.

`make_world(profile, n_chutes, n_servers, seed)` returns the servers, the catalog and the hidden
truth the simulator needs (failure probabilities, start-up times); `make_snapshot` turns a world
into a planner snapshot, optionally with part of the fleet already filled and some ledger history.
Everything is drawn from one `random.Random(seed)`, so a seed names a fleet.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from gepetto_core.scheduling.snapshot import (
    ChuteMetrics,
    ChuteUtilization,
    ChuteView,
    DeploymentView,
    FailureRecord,
    GpuView,
    ServerView,
    Snapshot,
)

Profile = Literal["tee", "legacy"]
VALIDATOR = "5validatorHotkey"
MAX_RATE = 4.50


@dataclass(frozen=True)
class GpuType:
    name: str
    vram: int
    rate: float  # validator $/h (Oct-2025 api/gpu.py)
    cost: tuple[float, float]  # miner $/GPU-h range
    sizes_fixed_8: bool
    tee: bool


GPU_TYPES: dict[str, GpuType] = {
    t.name: t
    for t in (
        GpuType("b200", 192, 4.50, (3.2, 4.8), True, True),
        GpuType("h200", 140, 2.75, (2.3, 3.3), True, True),
        GpuType("h100_sxm", 80, 2.35, (1.8, 2.5), True, True),
        GpuType("pro_6000", 96, 1.80, (1.1, 1.8), False, True),
        GpuType("h100", 80, 1.79, (1.6, 2.2), False, False),
        GpuType("a100", 80, 1.20, (0.8, 1.3), False, False),
        GpuType("l40s", 48, 0.85, (0.6, 0.95), False, False),
        GpuType("5090", 32, 0.70, (0.55, 0.9), False, False),
        GpuType("a6000", 48, 0.50, (0.4, 0.65), False, False),
        GpuType("4090", 24, 0.40, (0.3, 0.55), False, False),
    )
}

FLEET_MIX: dict[str, list[tuple[str, float]]] = {
    "legacy": [
        ("h200", 0.12),
        ("h100_sxm", 0.10),
        ("h100", 0.06),
        ("b200", 0.04),
        ("pro_6000", 0.06),
        ("a100", 0.14),
        ("l40s", 0.12),
        ("a6000", 0.12),
        ("5090", 0.10),
        ("4090", 0.14),
    ],
    "tee": [("h200", 0.45), ("h100_sxm", 0.25), ("b200", 0.15), ("pro_6000", 0.15)],
}


@dataclass
class Truth:
    """What the planner cannot see: how likely things fail and how long chutes take to start."""

    chute_fail: dict[str, float] = field(default_factory=dict)
    server_fail: dict[str, float] = field(default_factory=dict)
    pair_fail: dict[tuple[str, str], float] = field(default_factory=dict)
    startup_range: dict[str, tuple[float, float]] = field(default_factory=dict)  # minutes

    def p_fail(self, chute_id: str, server_id: str) -> float:
        ok = (
            (1 - self.chute_fail.get(chute_id, 0.0))
            * (1 - self.server_fail.get(server_id, 0.0))
            * (1 - self.pair_fail.get((chute_id, server_id), 0.0))
        )
        return 1 - ok


@dataclass
class World:
    profile: Profile
    servers: list[ServerView]
    chutes: list[ChuteView]
    truth: Truth
    # Target instance counts network-wide and other miners' instances, per chute.
    targets: dict[str, int]
    others: dict[str, int]


def _pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    r = rng.random() * sum(w for _, w in weighted)
    for name, w in weighted:
        r -= w
        if r <= 0:
            return name
    return weighted[-1][0]


def _failure_class(rng: random.Random, rates: tuple[float, float, float]) -> float:
    r = rng.random()
    return rates[0] if r < 0.80 else rates[1] if r < 0.95 else rates[2]


def make_servers(profile: Profile, n: int, rng: random.Random, truth: Truth) -> list[ServerView]:
    servers: list[ServerView] = []
    for i in range(n):
        t = GPU_TYPES[_pick(rng, FLEET_MIX[profile])]
        if t.sizes_fixed_8 or profile == "tee":
            size = 8
        else:
            size = int(_pick(rng, [("1", 0.25), ("2", 0.25), ("4", 0.2), ("8", 0.3)]))
        sid = f"srv-{i:04d}"
        gpus = tuple(GpuView(gpu_id=f"{sid}-g{k}") for k in range(size))
        servers.append(
            ServerView(
                server_id=sid,
                name=f"{t.name}-{i:04d}",
                validator=VALIDATOR,
                gpu_type=t.name,
                hourly_cost=round(rng.uniform(*t.cost), 3),
                gpus=gpus,
                is_tee=profile == "tee",
                disk_free_gb=rng.choice([200.0, 500.0, 1000.0]),
            )
        )
        truth.server_fail[sid] = _failure_class(rng, (0.02, 0.05, 0.35))
    return servers


def _gpu_count(rng: random.Random) -> int:
    return int(_pick(rng, [("1", 0.77), ("2", 0.10), ("4", 0.05), ("8", 0.08)]))


def make_catalog(
    profile: Profile, n: int, rng: random.Random, truth: Truth, p_scalable: float
) -> tuple[list[ChuteView], dict[str, int], dict[str, int]]:
    chutes: list[ChuteView] = []
    targets: dict[str, int] = {}
    others: dict[str, int] = {}
    tee_types = {k for k, t in GPU_TYPES.items() if t.tee}
    for i in range(n):
        cid = f"chute-{i:04d}"
        g = _gpu_count(rng)
        if g == 8:
            vram = 140 if rng.random() < 0.6 else 80
            tee = profile == "tee" or rng.random() < 0.7
        else:
            vram = rng.choice([16, 24, 32, 48, 80, 140])
            tee = profile == "tee"
        supported = {k for k, t in GPU_TYPES.items() if t.vram >= vram}
        if tee:
            supported &= tee_types
        if len(supported) > 2 and rng.random() < 0.2:
            supported = set(rng.sample(sorted(supported), 2))
        min_rate = min(GPU_TYPES[k].rate for k in supported)
        private = rng.random() < 0.05
        m = g * min_rate / MAX_RATE * (2.25 if tee else 1.0) * (2.0 if private else 1.0)
        if rng.random() < 0.25:
            m *= 1 + 0.5 * rng.betavariate(2, 5)
        bounty = rng.uniform(1.1, 1.5) if rng.random() < 0.04 else 1.0
        m *= bounty
        scalable = rng.random() < p_scalable
        allowance = rng.choice([1, 1, 2, 3]) if scalable else 0
        other = rng.randint(0, 8)
        invocations = 6e6 / (i + 1) ** 1.1 * rng.uniform(0.3, 1.5) if rng.random() < 0.7 else 0.0
        rate_limited = 0.0 if rng.random() < 0.8 else invocations * rng.expovariate(1 / 0.05)
        metrics = ChuteMetrics(
            total_compute_time=invocations * rng.uniform(1.0, 20.0),
            compute_multiplier=m,
            total_invocations=invocations,
            rate_limit_count=rate_limited,
        )
        chutes.append(
            ChuteView(
                chute_id=cid,
                name=f"model-{i:04d}",
                validator=VALIDATOR,
                gpu_count=g,
                supported_gpus=frozenset(supported),
                version="v1",
                remote_version="v1",
                tee=tee,
                preemptible=not private,
                effective_compute_multiplier=round(m, 4),
                bounty_boost=bounty,
                metrics=metrics,
                utilization=ChuteUtilization(
                    scalable=scalable,
                    scale_allowance=allowance,
                    utilization=rng.betavariate(2, 4),
                ),
                instance_count=other,
            )
        )
        targets[cid] = other + allowance
        others[cid] = other
        truth.chute_fail[cid] = _failure_class(rng, (0.03, 0.10, 0.60))
        lo, hi = (5.0, 20.0) if g <= 2 else (12.0, 35.0) if g == 4 else (25.0, 60.0)
        truth.startup_range[cid] = (lo, hi)
    return chutes, targets, others


def make_world(
    profile: Profile, n_chutes: int, n_servers: int, seed: int, p_scalable: float = 0.7
) -> World:
    rng = random.Random(seed)
    truth = Truth()
    servers = make_servers(profile, n_servers, rng, truth)
    chutes, targets, others = make_catalog(profile, n_chutes, rng, truth, p_scalable)
    for c in chutes:
        for s in servers:
            # A hidden bad pair: only drawn for compatible pairs, 5 % of them.
            if s.gpu_type in c.supported_gpus and s.is_tee == c.tee and rng.random() < 0.05:
                truth.pair_fail[(c.chute_id, s.server_id)] = 0.5
    return World(profile, servers, chutes, truth, targets, others)


def make_snapshot(
    world: World,
    now: datetime,
    seed: int,
    prefill: float = 0.0,
    history: int = 0,
) -> Snapshot:
    """A planner snapshot of `world`: `prefill` of the GPUs already running established
    instances, and `history` ledger records drawn from the hidden failure rates."""
    rng = random.Random(seed * 7919 + 17)
    servers = list(world.servers)
    chutes = {c.chute_id: c for c in world.chutes}
    deployments: list[DeploymentView] = []
    if prefill > 0:
        total = sum(len(s.gpus) for s in servers)
        goal = int(total * prefill)
        used = 0
        by_type: dict[tuple[str, bool], list[ChuteView]] = {}
        for c in world.chutes:
            for t in c.supported_gpus:
                by_type.setdefault((t, c.tee), []).append(c)
        new_servers: list[ServerView] = []
        for s in rng.sample(servers, len(servers)):
            gpus = list(s.gpus)
            free = [i for i, gv in enumerate(gpus) if gv.deployment_id is None]
            options = by_type.get((s.gpu_type, s.is_tee), [])
            tries = 0
            while used < goal and free and options and tries < 6:
                tries += 1
                c = rng.choice(options)
                if c.gpu_count > len(free):
                    continue
                did = f"dep-{len(deployments):05d}"
                take = free[: c.gpu_count]
                free = free[c.gpu_count :]
                for i in take:
                    gpus[i] = GpuView(gpu_id=gpus[i].gpu_id, deployment_id=did)
                activated = now - timedelta(minutes=rng.uniform(70, 600))
                deployments.append(
                    DeploymentView(
                        deployment_id=did,
                        chute_id=c.chute_id,
                        server_id=s.server_id,
                        gpu_ids=tuple(gpus[i].gpu_id for i in take),
                        created_at=activated - timedelta(minutes=15),
                        activated_at=activated,
                        active=True,
                        preemptible=c.preemptible,
                        compute_multiplier=c.effective_compute_multiplier,
                    )
                )
                used += c.gpu_count
            new_servers.append(
                ServerView(
                    server_id=s.server_id,
                    name=s.name,
                    validator=s.validator,
                    gpu_type=s.gpu_type,
                    hourly_cost=s.hourly_cost,
                    gpus=tuple(gpus),
                    locked=s.locked,
                    is_tee=s.is_tee,
                    disk_free_gb=s.disk_free_gb,
                )
            )
        order = {s.server_id: i for i, s in enumerate(servers)}
        servers = sorted(new_servers, key=lambda s: order[s.server_id])
        ours: dict[str, int] = {}
        for d in deployments:
            ours[d.chute_id] = ours.get(d.chute_id, 0) + 1
        for cid, n in ours.items():
            c = chutes[cid]
            chutes[cid] = _with_instances(c, world.others[cid] + n)
    failures: list[FailureRecord] = []
    for k in range(history):
        c = rng.choice(world.chutes)
        compatible = [
            s for s in world.servers if s.gpu_type in c.supported_gpus and s.is_tee == c.tee
        ]
        if not compatible:
            continue
        s = rng.choice(compatible)
        created = now - timedelta(hours=rng.uniform(1.5, 30))
        failed = rng.random() < world.truth.p_fail(c.chute_id, s.server_id)
        lived = (
            timedelta(minutes=rng.uniform(3, 15))
            if failed
            else timedelta(hours=rng.uniform(1.2, 9))
        )
        ended = created + lived
        failures.append(
            FailureRecord(
                deployment_id=f"old-{k:05d}",
                chute_id=c.chute_id,
                server_id=s.server_id,
                gpu_type=s.gpu_type,
                created_at=created,
                ended_at=ended if ended < now else None,
                reason="crash" if failed else "downscaled",
            )
        )
    return Snapshot(
        chutes=tuple(chutes[c.chute_id] for c in world.chutes),
        servers=tuple(servers),
        deployments=tuple(deployments),
        failures=tuple(failures),
    )


def _with_instances(c: ChuteView, count: int) -> ChuteView:
    from dataclasses import replace

    return replace(c, instance_count=count)
