"""Who is asking, and whether their role lets them run a verb's form.

Deny by default: a caller with no role may run only what needs none (`help`). The role each
form of a verb needs, and its confirmation policy, are in the verb's record (`verbs.py`).
Policies: `none` (reads), `confirm` (a plan is shown and confirmed first), `approval`
(confirmed by a second person in Slack; the local CLI admin confirms alone, as they hold the
control plane's credentials anyway).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

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


def cli_caller(user: str) -> Caller:
    """The local CLI user (`user`: their login name, read by the front end)."""
    return Caller(actor=f"cli:{user}", source="cli", role="admin")


class Guarded(Protocol):
    """What a role check needs of a verb's form (`verbs.VerbSpec`)."""

    @property
    def key(self) -> str: ...

    @property
    def role(self) -> Role | None: ...  # None: anyone, even without a role (`help`)


def caller_role(caller: Caller, roles: Mapping[str, Role]) -> Role | None:
    """The highest role granted to the caller's id or any of its groups."""
    if caller.role is not None:
        return caller.role
    granted = [roles[k] for k in (caller.actor, *caller.groups) if k in roles]
    return max(granted, key=ROLE_RANK.__getitem__, default=None)


def allowed(caller: Caller, spec: Guarded, roles: Mapping[str, Role]) -> bool:
    if spec.role is None:
        return True
    role = caller_role(caller, roles)
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[spec.role]


def authorize(caller: Caller, spec: Guarded, roles: Mapping[str, Role]) -> None:
    if not allowed(caller, spec, roles):
        have = caller_role(caller, roles) or "no role"
        raise PermissionDeniedError(
            f"`{spec.key}` needs the {spec.role} role; {caller.actor} has {have}"
        )
