"""The planning snapshot mapper (pure): inventory rows + validator snapshots + ledger -> the
scheduling Snapshot the planner and the `scales`/`chutes`/`why` views read."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gepetto_core.config import load_settings
from gepetto_core.errors import ConfigError
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server
from gepetto_core.models.validator import (
    ActiveInstance,
    ChuteUtilization,
    ValidatorChute,
    ValidatorInstance,
    ValidatorJob,
)
from gepetto_core.scheduling import FailureRecord, PublicFootprint, Snapshot, rank_pairs
from gepetto_core.scheduling.backoff import refusal_reason
from gepetto_core.services.planning_input import (
    build_snapshot,
    data_age,
    plan_policy,
    public_footprint,
)
from gepetto_core.services.sync import ListName, ListState, ValidatorSnapshot, key_items

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
VAL = "5validator"


def row_chute(chute_id: str, **kw: object) -> Chute:
    base: dict[str, object] = dict(
        chute_id=chute_id, validator=VAL, name=f"name-{chute_id}", image="img", code="",
        filename="f.py", ref_str="f:c", version="v1", supported_gpus=["h100"], gpu_count=1,
    )  # fmt: skip
    return Chute.model_validate({**base, **kw})


def fetched(items: list[object], key: str, at: float) -> ListState[object]:
    return ListState(items=key_items(items, key), fetched_at=at, attempted_at=at)


def remote(at: float = 1000.0) -> ValidatorSnapshot:
    chutes = [
        ValidatorChute.model_validate(
            {
                "chute_id": "c1",
                "version": "v1",
                "cords": [{"path": "/x"}],
                "effective_compute_multiplier": 2.5,
                "compute_multiplier_factors": {"bounty_boost": 1.4},
            }
        ),
        ValidatorChute.model_validate({"chute_id": "c2", "version": "v2", "cords": []}),
    ]
    return ValidatorSnapshot(
        validator=VAL,
        chutes=fetched(chutes, "chute_id", at),  # type: ignore[arg-type]
        utilization=fetched(  # type: ignore[arg-type]
            [
                ChuteUtilization(
                    chute_id="c1", scalable=True, scale_allowance=3, total_instance_count=7
                )
            ],
            "chute_id",
            at - 30,
        ),
        instances=fetched([], "instance_id", at - 10),  # type: ignore[arg-type]
        jobs=fetched(  # type: ignore[arg-type]
            [
                ValidatorJob(job_id="j-open", chute_id="c1"),
                ValidatorJob(job_id="j-taken", chute_id="c1", instance_id="i9"),
                ValidatorJob(job_id="j-done", chute_id="c1", status="complete"),
            ],
            "job_id",
            at,
        ),
        active_instances=fetched(  # type: ignore[arg-type]
            [ActiveInstance(instance_id="inst-1", chute_id="c1", compute_multiplier=3.0)],
            "instance_id",
            at,
        ),
    )


def test_rows_and_validator_data_map_into_the_snapshot() -> None:
    server = Server(server_id="s1", validator=VAL, name="gpu-01", gpu_count=2, hourly_cost=1.5)
    gpus = [
        Gpu(gpu_id="g0", server_id="s1", model_short_ref="h100", verified=True, deployment_id="d1"),
        Gpu(gpu_id="g1", server_id="s1", model_short_ref="h100", verified=True),
    ]
    deployment = Deployment(
        deployment_id="d1", validator=VAL, chute_id="c1", server_id="s1", version="v1",
        instance_id="inst-1", active=True, activated_at=NOW - timedelta(hours=2),
        created_at=NOW - timedelta(hours=3),
    )  # fmt: skip
    failure = FailureRecord("d0", "c2", "s1", "h100", NOW - timedelta(hours=1), NOW, "crash")
    snap = build_snapshot(
        chutes=[row_chute("c1"), row_chute("c2", version="v1", ban_reason="bad")],
        servers=[server],
        gpus=gpus,
        deployments=[deployment],
        remote={VAL: remote()},
        failures=[failure],
        disk_free_gb={"s1": 400.0},
        now=NOW,
    )
    c1, c2 = snap.chute_by_id["c1"], snap.chute_by_id["c2"]
    assert c1.effective_compute_multiplier == 2.5 and c1.bounty_boost == 1.4
    assert c1.remote_version == "v1" and c1.at_remote_version and c1.has_cords
    assert c1.utilization.scale_allowance == 3 and c1.instance_count == 7
    assert c1.job_ids == ("j-open",)
    assert c2.remote_version == "v2" and not c2.at_remote_version and not c2.has_cords
    assert c2.ban_reason == "bad"
    [s1] = snap.servers
    assert s1.gpu_type == "h100" and s1.free_gpu_ids() == ["g1"] and s1.disk_free_gb == 400.0
    [d1] = snap.deployments
    assert d1.gpu_ids == ("g0",) and d1.compute_multiplier == 3.0 and d1.active
    assert d1.instance_id == "inst-1" and not d1.uncounted  # the validator counts it
    assert snap.failures == (failure,)
    assert snap.our_instances("c1") == 1


def test_without_validator_data_no_chute_is_worth_placing() -> None:
    server = Server(server_id="s1", validator=VAL, name="gpu-01", gpu_count=1, hourly_cost=1.0)
    snap = build_snapshot(
        chutes=[row_chute("c1")],
        servers=[server],
        gpus=[Gpu(gpu_id="g0", server_id="s1", model_short_ref="h100", verified=True)],
        deployments=[],
        remote={},
        now=NOW,
    )
    assert snap.chute_by_id["c1"].effective_compute_multiplier == 0.0
    policy = plan_policy(load_settings({}))
    [pair] = rank_pairs(snap, policy, NOW)
    assert not pair.fits_now and "no_multiplier" in (pair.reason or "")


def test_a_chute_waiting_for_its_removal_is_never_placed() -> None:
    server = Server(server_id="s1", validator=VAL, name="gpu-01", gpu_count=1, hourly_cost=1.0)
    gpu = Gpu(gpu_id="g0", server_id="s1", model_short_ref="h100", verified=True)

    def pair(removals: dict[str, str]) -> tuple[bool, str | None]:
        snap = build_snapshot(
            chutes=[row_chute("c1")],
            servers=[server],
            gpus=[gpu],
            deployments=[],
            remote={VAL: remote()},
            chute_removals=removals,
            now=NOW,
        )
        [ranked] = rank_pairs(snap, plan_policy(load_settings({})), NOW)
        return ranked.fits_now, ranked.reason

    assert pair({})[0]
    fits, reason = pair({"c1": "the validator deleted the chute"})
    assert not fits and "to be removed: the validator deleted the chute" in (reason or "")


def test_data_age_is_the_oldest_list_and_none_when_one_is_missing() -> None:
    snap = remote(at=1000.0)
    assert data_age([snap], 1100.0) == 130.0  # utilization was fetched 30 s earlier
    assert data_age([snap], 1100.0, [ListName.CHUTES]) == 100.0
    assert data_age([snap], 1100.0, [ListName.METRICS]) is None
    assert data_age([], 1100.0) is None


def test_policy_takes_the_back_off_settings() -> None:
    settings = load_settings(
        {"GEPETTO_FAILURE_WINDOW_MINUTES": "20", "GEPETTO_FAILURE_COOLDOWN_MINUTES": "30"}
    )
    policy = plan_policy(settings)
    assert policy.backoff.failure_window == timedelta(minutes=20)
    assert policy.backoff.base_cooldown == timedelta(minutes=30)
    assert policy.max_pulls_per_server is None and policy.max_deploys_per_round == 24
    capped = plan_policy(
        load_settings({"GEPETTO_MAX_PULLS_PER_SERVER": "2", "GEPETTO_MAX_DEPLOYS_PER_ROUND": "6"})
    )
    assert capped.max_pulls_per_server == 2 and capped.max_deploys_per_round == 6


def test_start_up_minutes_come_from_our_own_deployments() -> None:
    def deployment(name: str, chute_id: str, minutes: float | None) -> Deployment:
        created = NOW - timedelta(hours=3)
        activated = created + timedelta(minutes=minutes) if minutes is not None else None
        return Deployment(
            deployment_id=name, validator=VAL, chute_id=chute_id, server_id="s1",
            version="v1", created_at=created, activated_at=activated, active=minutes is not None,
        )  # fmt: skip

    rows = [
        deployment("d1", "c1", 30.0),
        deployment("d2", "c1", 50.0),
        deployment("d3", "c1", 65.0),
        deployment("d4", "c1", None),  # still starting: says nothing yet
        deployment("d5", "c2", None),
    ]

    def snapshot(ledger: list[FailureRecord]) -> Snapshot:
        return build_snapshot(
            chutes=[row_chute("c1"), row_chute("c2")],
            servers=[],
            gpus=[],
            deployments=rows,
            remote={VAL: remote()},
            failures=ledger,
            now=NOW,
        )

    snap = snapshot([])
    assert snap.chute_by_id["c1"].startup_minutes == 50.0
    assert snap.chute_by_id["c2"].startup_minutes is None  # the planner's per-size default
    assert len(snap.deployments) == 5

    # A deployment that ended after activating still counts: the ledger kept its activation.
    created = NOW - timedelta(days=2)
    ended = FailureRecord(
        "old", "c2", "s1", "h100", created, NOW - timedelta(days=1), "downscaled",
        counted=False, activated_at=created + timedelta(minutes=40),
    )  # fmt: skip
    died_starting = replace(ended, deployment_id="dead", activated_at=None)
    assert snapshot([ended, died_starting]).chute_by_id["c2"].startup_minutes == 40.0


def test_the_public_footprint_is_what_the_validator_counts() -> None:
    """Our activated instances of public chutes, with their chutes' GPUs, from the validator's
    list of our instances; unknown (None) until that list was fetched."""
    chutes = [
        ValidatorChute.model_validate(
            {"chute_id": cid, "version": "v1", "public": public, "node_selector": {"gpu_count": g}}
        )
        for cid, public, g in (("big", True, 8), ("small", True, 1), ("priv", False, 8))
    ]
    instances = [
        ValidatorInstance(instance_id="i1", chute_id="big", active=True),
        ValidatorInstance(instance_id="i2", chute_id="big", active=True),
        ValidatorInstance(instance_id="i3", chute_id="small", active=True),
        ValidatorInstance(instance_id="i4", chute_id="small", active=False),  # starting
        ValidatorInstance(instance_id="i5", chute_id="priv", active=True),  # not public
        ValidatorInstance(instance_id="i6", chute_id="gone", active=True),  # chute unknown
    ]
    snap = ValidatorSnapshot(
        validator=VAL,
        chutes=fetched(chutes, "chute_id", 1000.0),  # type: ignore[arg-type]
        instances=fetched(instances, "instance_id", 1000.0),  # type: ignore[arg-type]
    )
    assert public_footprint(VAL, snap) == PublicFootprint(VAL, 3, 17)
    assert public_footprint(VAL, replace(snap, instances=ListState())) is None

    mapped = build_snapshot(
        chutes=[], servers=[], gpus=[], deployments=[], remote={VAL: snap}, now=NOW
    )
    assert mapped.public_footprint(VAL) == PublicFootprint(VAL, 3, 17)
    assert mapped.public_footprint("5other") is None


def test_a_job_the_validator_refused_us_is_not_offered_again() -> None:
    """The ledger keeps a job's 403 (we already tried it); the job leaves the chute's jobs."""
    at = NOW - timedelta(hours=1)
    refused = FailureRecord(
        "r1", "c1", "s1", "h100", at, at, refusal_reason("HTTP 403: tried", job_id="j-open"),
        counted=False,
    )  # fmt: skip

    def jobs(ledger: list[FailureRecord]) -> tuple[str, ...]:
        snap = build_snapshot(
            chutes=[row_chute("c1")], servers=[], gpus=[], deployments=[],
            remote={VAL: remote()}, failures=ledger, now=NOW,
        )  # fmt: skip
        return snap.chute_by_id["c1"].job_ids

    assert jobs([]) == ("j-open",)
    assert jobs([refused]) == ()


def test_the_gpu_cost_weight_is_a_setting_between_sunk_and_rented() -> None:
    assert plan_policy(load_settings({})).cost_weight == 1.0
    assert plan_policy(load_settings({"GEPETTO_COST_WEIGHT": "0"})).cost_weight == 0.0
    with pytest.raises(ConfigError, match="GEPETTO_COST_WEIGHT"):
        load_settings({"GEPETTO_COST_WEIGHT": "1.5"})
