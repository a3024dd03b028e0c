"""Small builders for planner snapshots (pure-logic tests: no I/O involved). Shared by the
scheduling unit tests and the benchmark's tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gepetto_core.scheduling import (
    ChuteUtilization,
    ChuteView,
    DeploymentView,
    FailureRecord,
    GpuView,
    ServerView,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
VAL = "5validator"


class Builder:
    now = NOW

    def chute(
        self,
        chute_id: str,
        gpus: tuple[str, ...] = ("a100",),
        gpu_count: int = 1,
        multiplier: float = 1.0,
        allowance: int | None = 1,
        instance_count: int = 5,
        **kw: object,
    ) -> ChuteView:
        util = kw.pop("utilization", None) or ChuteUtilization(scale_allowance=allowance)
        base = ChuteView(
            chute_id=chute_id,
            name=f"name-{chute_id}",
            validator=VAL,
            gpu_count=gpu_count,
            supported_gpus=frozenset(gpus),
            version="v1",
            remote_version="v1",
            effective_compute_multiplier=multiplier,
            utilization=util,  # type: ignore[arg-type]
            instance_count=instance_count,
        )
        return replace(base, **kw)  # type: ignore[arg-type]

    def server(
        self,
        server_id: str,
        gpu_type: str = "a100",
        gpus: int = 8,
        cost: float = 1.0,
        used: dict[int, str] | None = None,
        **kw: object,
    ) -> ServerView:
        used = used or {}
        views = tuple(
            GpuView(gpu_id=f"{server_id}-g{i}", deployment_id=used.get(i)) for i in range(gpus)
        )
        base = ServerView(
            server_id=server_id,
            name=f"node-{server_id}",
            validator=VAL,
            gpu_type=gpu_type,
            hourly_cost=cost,
            gpus=views,
            disk_free_gb=500.0,
        )
        return replace(base, **kw)  # type: ignore[arg-type]

    def deployment(
        self,
        deployment_id: str,
        chute_id: str,
        server_id: str,
        gpu_indexes: tuple[int, ...] = (0,),
        activated_minutes_ago: float | None = 120.0,
        **kw: object,
    ) -> DeploymentView:
        activated = (
            None
            if activated_minutes_ago is None
            else NOW - timedelta(minutes=activated_minutes_ago)
        )
        base = DeploymentView(
            deployment_id=deployment_id,
            chute_id=chute_id,
            server_id=server_id,
            gpu_ids=tuple(f"{server_id}-g{i}" for i in gpu_indexes),
            created_at=(activated or NOW) - timedelta(minutes=15),
            activated_at=activated,
            active=activated is not None,
        )
        return replace(base, **kw)  # type: ignore[arg-type]

    def early_deaths(self, server_id: str, chutes: int = 3) -> tuple[FailureRecord, ...]:
        """One crash per distinct chute on the server, each 10 minutes after its start."""
        return tuple(
            FailureRecord(
                f"d{i}",
                f"c{i}",
                server_id,
                "a100",
                NOW - timedelta(minutes=40),
                NOW - timedelta(minutes=30),
                "crash",
            )
            for i in range(chutes)
        )
