"""Every candidate rule, table-driven: each case changes one thing and names the rule that
must fire (or None when the candidate must pass)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from gepetto_core.scheduling import (
    ChuteUtilization,
    FailureRecord,
    PlanPolicy,
    Reason,
    Snapshot,
    backoff_state,
)
from gepetto_core.scheduling.backoff import EMPTY_BACKOFF
from gepetto_core.scheduling.rules import (
    allowance,
    chute_rejection,
    deploy_rejection,
    pair_rejection,
    server_rejection,
)

from .conftest import NOW, Builder

B = Builder()
POLICY = PlanPolicy()

CHUTE_CASES: list[tuple[str, Callable[[Any], Any], Reason | None]] = [
    ("eligible", lambda c: c, None),
    ("banned", lambda c: replace(c, ban_reason="abuse"), Reason.BANNED),
    ("stale version", lambda c: replace(c, remote_version="v2"), Reason.STALE_VERSION),
    ("job-only chute", lambda c: replace(c, has_cords=False), Reason.NO_CORDS),
    (
        "rolling update",
        lambda c: replace(c, utilization=ChuteUtilization(update_in_progress=True)),
        Reason.UPDATE_IN_PROGRESS,
    ),
    (
        "validator says not scalable",
        lambda c: replace(c, utilization=ChuteUtilization(scalable=False)),
        Reason.NOT_SCALABLE,
    ),
    (
        "zero multiplier",
        lambda c: replace(c, effective_compute_multiplier=0.0),
        Reason.NO_MULTIPLIER,
    ),
    (
        "allowance used up",
        lambda c: replace(c, utilization=ChuteUtilization(scale_allowance=0)),
        Reason.NO_ALLOWANCE,
    ),
]


@pytest.mark.parametrize(
    ("name", "change", "expected"), CHUTE_CASES, ids=[c[0] for c in CHUTE_CASES]
)
def test_chute_rules(name: str, change: Callable[[Any], Any], expected: Reason | None) -> None:
    chute = change(B.chute("c1"))
    snap = Snapshot(chutes=(chute,), servers=())
    rej = chute_rejection(chute, snap, POLICY, EMPTY_BACKOFF)
    assert (rej.reason if rej else None) is expected


def test_whitelist_only_rejects_others() -> None:
    chute = B.chute("c1")
    snap = Snapshot(chutes=(chute,), servers=(), whitelist=frozenset({"c2"}))
    strict = replace(POLICY, whitelist_only=True)
    rej = chute_rejection(chute, snap, strict, EMPTY_BACKOFF)
    assert rej is not None and rej.reason is Reason.NOT_WHITELISTED
    assert chute_rejection(chute, snap, POLICY, EMPTY_BACKOFF) is None


def test_chute_backoff_rule_names_the_cooldown() -> None:
    chute = B.chute("c1")
    records = tuple(
        FailureRecord(
            f"d{i}",
            "c1",
            f"s{i}",
            "a100",
            NOW - timedelta(minutes=30 + i),
            NOW - timedelta(minutes=25 + i),
            "crash",
        )
        for i in range(2)
    )
    snap = Snapshot(chutes=(chute,), servers=(), failures=records)
    state = backoff_state(records, NOW, POLICY.backoff)
    rej = chute_rejection(chute, snap, POLICY, state)
    assert rej is not None and rej.reason is Reason.CHUTE_BACKOFF
    assert "back-off until" in rej.detail


@pytest.mark.parametrize(
    ("scale_allowance", "network", "ours", "starting", "claimed", "expected"),
    [
        (3, 5, 0, 0, 0, 3),  # others hold instances: the whole allowance
        (3, 2, 2, 0, 0, 1),  # we hold every instance: anti-monopoly keeps 2 slots
        (2, 1, 1, 0, 0, 0),  # we hold every instance and <= 2 slots remain: refused
        (3, 4, 2, 1, 0, 2),  # one of ours starting, not yet counted: it takes a slot
        (3, 5, 2, 1, 1, 3),  # starting but already claimed: scale_allowance counts it
        (None, 5, 0, 0, 0, 1),  # validator did not say: one at a time
    ],
)
def test_allowance(
    scale_allowance: int | None,
    network: int,
    ours: int,
    starting: int,
    claimed: int,
    expected: int,
) -> None:
    chute = B.chute("c1", allowance=scale_allowance, instance_count=network)
    deps = [
        B.deployment(
            f"d{i}",
            "c1",
            "s1",
            (i,),
            activated_minutes_ago=None if i < starting else 90,
            instance_id=f"i{i}" if i >= starting or i < claimed else None,
        )
        for i in range(ours)
    ]
    snap = Snapshot(chutes=(chute,), servers=(), deployments=tuple(deps))
    assert allowance(chute, snap)[0] == expected


SERVER_CASES: list[tuple[str, Callable[[Any], Any], int, Reason | None]] = [
    ("usable", lambda s: s, 0, None),
    ("locked", lambda s: replace(s, locked=True), 0, Reason.SERVER_LOCKED),
    ("low disk", lambda s: replace(s, disk_free_gb=5.0), 0, Reason.LOW_DISK),
    ("unknown disk is not checked", lambda s: replace(s, disk_free_gb=None), 0, None),
    ("too many pulls", lambda s: s, 2, Reason.PULLS_BUSY),
]


@pytest.mark.parametrize(
    ("name", "change", "pending", "expected"), SERVER_CASES, ids=[c[0] for c in SERVER_CASES]
)
def test_server_rules(
    name: str, change: Callable[[Any], Any], pending: int, expected: Reason | None
) -> None:
    two_pulls = replace(POLICY, max_pulls_per_server=2)
    rej = server_rejection(change(B.server("s1")), two_pulls, EMPTY_BACKOFF, pending)
    assert (rej.reason if rej else None) is expected


@pytest.mark.parametrize(
    ("probes", "pending", "expected"),
    [
        (0, 0, Reason.SERVER_BACKOFF),  # closed: takes nothing
        (1, 0, None),  # half-open: one probe may start
        (1, 1, Reason.SERVER_BACKOFF),  # ... and no second while it is starting
        (2, 1, None),
    ],
)
def test_server_backoff_rule(probes: int, pending: int, expected: Reason | None) -> None:
    policy = replace(POLICY, backoff=replace(POLICY.backoff, fenced_server_probes=probes))
    state = backoff_state(B.early_deaths("s1"), NOW, policy.backoff)
    rej = server_rejection(B.server("s1"), policy, state, pending)
    assert (rej.reason if rej else None) is expected


PAIR_CASES: list[tuple[str, dict[str, Any], dict[str, Any], int, Reason | None]] = [
    ("fits", {}, {}, 8, None),
    ("other validator", {}, {"validator": "5other"}, 8, Reason.VALIDATOR_MISMATCH),
    ("TEE chute on plain server", {"tee": True}, {}, 8, Reason.TEE_MISMATCH),
    ("plain chute on TEE server", {}, {"is_tee": True}, 8, Reason.TEE_MISMATCH),
    ("unsupported GPU", {"supported_gpus": frozenset({"h200"})}, {}, 8, Reason.GPU_UNSUPPORTED),
    ("not enough free GPUs", {"gpu_count": 4}, {}, 3, Reason.NOT_ENOUGH_GPUS),
]


@pytest.mark.parametrize(
    ("name", "chute_kw", "server_kw", "free", "expected"),
    PAIR_CASES,
    ids=[c[0] for c in PAIR_CASES],
)
def test_pair_rules(
    name: str,
    chute_kw: dict[str, Any],
    server_kw: dict[str, Any],
    free: int,
    expected: Reason | None,
) -> None:
    chute = replace(B.chute("c1"), **chute_kw)
    server = replace(B.server("s1"), **server_kw)
    rej = pair_rejection(chute, server, free, EMPTY_BACKOFF)
    assert (rej.reason if rej else None) is expected


DEPLOY_CASES = [
    *[(name, c, s, 8 - free, r) for name, c, s, free, r in PAIR_CASES],
    ("banned chute", {"ban_reason": "abuse"}, {}, 0, Reason.BANNED),
    ("locked server", {}, {"locked": True}, 0, Reason.SERVER_LOCKED),
]


@pytest.mark.parametrize(
    ("name", "chute_kw", "server_kw", "used", "expected"),
    DEPLOY_CASES,
    ids=[c[0] for c in DEPLOY_CASES],
)
def test_the_deploy_guard_applies_the_planner_rules(
    name: str,
    chute_kw: dict[str, Any],
    server_kw: dict[str, Any],
    used: int,
    expected: Reason | None,
) -> None:
    """An operator's deploy is refused by the same rules (and with the same reasons) as the
    planner's candidates: ban, lock, the pair rules and free GPUs."""
    chute = replace(B.chute("c1"), **chute_kw)
    server = replace(B.server("s1", used={i: f"d{i}" for i in range(used)}), **server_kw)
    rej = deploy_rejection(chute, server)
    assert (rej.reason if rej else None) is expected


def test_pair_backoff_rule() -> None:
    record = FailureRecord(
        "d1", "c1", "s1", "a100", NOW - timedelta(minutes=20), NOW - timedelta(minutes=10), "crash"
    )
    state = backoff_state([record], NOW, POLICY.backoff)
    rej = pair_rejection(B.chute("c1"), B.server("s1"), 8, state)
    assert rej is not None and rej.reason is Reason.PAIR_BACKOFF
    assert pair_rejection(B.chute("c1"), B.server("s2"), 8, state) is None
