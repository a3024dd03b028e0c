"""Who may run what: verbs with their minimum role and confirmation policy, and the caller.

Deny by default: a caller with no role may run nothing but `help`; viewers may read; every
mutation needs at least an operator. Policies: `none` (reads), `confirm` (a plan is shown and
confirmed first), `approval` (confirmed by a second person in Slack; the local CLI admin
confirms alone, as they hold the control plane's credentials anyway).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from gepetto_core.commands.parser import ParsedCommand
from gepetto_core.config import Role
from gepetto_core.errors import PermissionDeniedError

Policy = Literal["none", "confirm", "approval"]
Source = Literal["cli", "slack", "autoscaler"]
ROLE_RANK: dict[Role, int] = {"viewer": 1, "operator": 2, "admin": 3}


@dataclass(frozen=True)
class Caller:
    """Who is asking. Slack passes user and group ids (never display names)."""

    actor: str
    source: Source
    groups: tuple[str, ...] = ()
    channel: str | None = None
    # A role fixed by the front end (the local CLI user is admin); None: look it up.
    role: Role | None = None


def cli_caller() -> Caller:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (some containers)
        user = f"uid{os.getuid()}"
    return Caller(actor=f"cli:{user}", source="cli", role="admin")


@dataclass(frozen=True)
class VerbSpec:
    key: str
    role: Role
    policy: Policy
    mutation: bool


_SPECS: tuple[VerbSpec, ...] = (
    VerbSpec("help", "viewer", "none", False),
    VerbSpec("nodes", "viewer", "none", False),
    VerbSpec("pods", "viewer", "none", False),
    VerbSpec("insts", "viewer", "none", False),
    VerbSpec("chutes", "viewer", "none", False),
    VerbSpec("scales", "viewer", "none", False),
    VerbSpec("why", "viewer", "none", False),
    VerbSpec("recycle --dry-run", "viewer", "none", False),
    VerbSpec("backoff list", "viewer", "none", False),
    VerbSpec("autoscaler status", "viewer", "none", False),
    VerbSpec("audit", "operator", "none", False),
    VerbSpec("fleet", "viewer", "none", False),  # #26
    VerbSpec("report", "viewer", "none", False),  # #26
    VerbSpec("recycle", "operator", "confirm", True),
    VerbSpec("deploy", "operator", "confirm", True),
    VerbSpec("undeploy", "operator", "confirm", True),
    VerbSpec("undeploy --all-on", "admin", "approval", True),
    VerbSpec("backoff clear", "operator", "confirm", True),
    VerbSpec("autoscaler pause", "operator", "confirm", True),
    VerbSpec("autoscaler resume", "operator", "confirm", True),
    VerbSpec("autoscaler shadow", "operator", "confirm", True),
    VerbSpec("lock", "operator", "confirm", True),
    VerbSpec("unlock", "operator", "confirm", True),
)
SPECS: Mapping[str, VerbSpec] = {s.key: s for s in _SPECS}


def spec_for(command: ParsedCommand) -> VerbSpec:
    return SPECS[command.key]


def caller_role(caller: Caller, roles: Mapping[str, Role]) -> Role | None:
    """The highest role granted to the caller's id or any of its groups."""
    if caller.role is not None:
        return caller.role
    granted = [roles[k] for k in (caller.actor, *caller.groups) if k in roles]
    return max(granted, key=ROLE_RANK.__getitem__, default=None)


def allowed(caller: Caller, spec: VerbSpec, roles: Mapping[str, Role]) -> bool:
    if spec.key == "help":
        return True
    role = caller_role(caller, roles)
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[spec.role]


def authorize(caller: Caller, spec: VerbSpec, roles: Mapping[str, Role]) -> None:
    if not allowed(caller, spec, roles):
        have = caller_role(caller, roles) or "no role"
        raise PermissionDeniedError(
            f"`{spec.key}` needs the {spec.role} role; {caller.actor} has {have}"
        )


def visible_specs(caller: Caller, roles: Mapping[str, Role]) -> list[VerbSpec]:
    """The verbs to list in `help` (hidden when the caller's role cannot run them)."""
    return [s for s in _SPECS if allowed(caller, s, roles)]
