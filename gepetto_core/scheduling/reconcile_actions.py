"""What a reconcile pass may do, one type per action, and the plan that lists them (the pure
planner is `scheduling/reconcile_plan.py`; `services/reconcile_service.py` applies them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EndKind = Literal["failure", "planned"]


@dataclass(frozen=True)
class SetInstanceId:
    deployment_id: str
    instance_id: str
    reason: str


@dataclass(frozen=True)
class MirrorState:
    deployment_id: str
    verified: bool  # set verified_at now when True
    active: bool | None  # new value when it changed
    reason: str


@dataclass(frozen=True)
class RemoveDeployment:
    """Full undeploy: row, validator instance, Job and Service.

    `observed`: the removal rests on something seen to fail (a failed Job, a terminated pod, a
    deadline passed), not on something missing from a listing. Only removals for absence count
    towards the mass-removal guard: ten chutes that crash together are ten real failures, while
    ten deployments missing at once more likely mean a listing lied."""

    deployment_id: str
    reason: str
    end: EndKind
    observed: bool = False


@dataclass(frozen=True)
class PurgeInstance:
    validator: str
    chute_id: str
    instance_id: str
    reason: str


@dataclass(frozen=True)
class DeleteJob:
    deployment_id: str
    job_name: str
    reason: str


@dataclass(frozen=True)
class DeleteService:
    deployment_id: str
    name: str
    reason: str


@dataclass(frozen=True)
class SaveChute:
    """Insert or update the local chute row from the validator's copy."""

    validator: str
    chute_id: str
    version: str
    image: str
    reason: str


@dataclass(frozen=True)
class DeleteChute:
    chute_id: str
    reason: str


@dataclass(frozen=True)
class RemoveServer:
    server_id: str
    reason: str


Action = (
    SetInstanceId
    | MirrorState
    | RemoveDeployment
    | PurgeInstance
    | DeleteJob
    | DeleteService
    | SaveChute
    | DeleteChute
    | RemoveServer
)
DESTRUCTIVE = (
    RemoveDeployment,
    PurgeInstance,
    DeleteJob,
    DeleteService,
    DeleteChute,
    RemoveServer,
)


@dataclass(frozen=True)
class ReconcilePlan:
    actions: list[Action] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # False when a listing was missing or a guard held removals back
    complete: bool = True

    def of_type(self, kind: type[Action]) -> list[Action]:
        return [a for a in self.actions if isinstance(a, kind)]

    @property
    def destructive(self) -> list[Action]:
        return [a for a in self.actions if isinstance(a, DESTRUCTIVE)]
