"""Find a chute, server or deployment by what an operator types: a full id, the short id the
tables show, an exact name or a unique name prefix. Pure: the caller passes the rows.

Unknown keys raise NotFoundError with close matches; a prefix that fits several raises
AmbiguousNameError listing them, so nothing is ever picked by guesswork. Also here: the
validator's instance of a deployment, and the name a chute goes by in tables and plans.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from gepetto_core.errors import AmbiguousNameError, NotFoundError
from gepetto_core.models.inventory import Chute, Deployment, Server
from gepetto_core.models.validator import ValidatorInstance

T = TypeVar("T")
MIN_ID_PREFIX = 6
MAX_SUGGESTIONS = 5


def _pick(
    kind: str,
    key: str,
    items: Sequence[T],
    ident: Callable[[T], str],
    name: Callable[[T], str | None],
) -> T:
    wanted = key.strip()
    folded = wanted.lower()
    for item in items:
        if ident(item).lower() == folded:
            return item
    exact = [i for i in items if (name(i) or "").lower() == folded]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise AmbiguousNameError(kind, wanted, [ident(i) for i in exact][:MAX_SUGGESTIONS])
    matches = [i for i in items if (name(i) or "").lower().startswith(folded)]
    if len(folded) >= MIN_ID_PREFIX:
        matches += [i for i in items if ident(i).lower().startswith(folded) and i not in matches]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        labels = [name(i) or ident(i) for i in matches]
        raise AmbiguousNameError(kind, wanted, sorted(labels)[:MAX_SUGGESTIONS])
    names = [n for i in items if (n := name(i))]
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
    close += [n for n in names if folded in n.lower() and n not in close]
    raise NotFoundError(kind, wanted, close[:MAX_SUGGESTIONS])


def resolve_chute(chutes: Sequence[Chute], key: str) -> Chute:
    return _pick("chute", key, chutes, lambda c: c.chute_id, lambda c: c.name)


def resolve_server(servers: Sequence[Server], key: str) -> Server:
    return _pick("server", key, servers, lambda s: s.server_id, lambda s: s.name)


def resolve_deployment(deployments: Sequence[Deployment], key: str) -> Deployment:
    """By full id or id prefix only: deployments have no names."""
    return _pick("deployment", key, deployments, lambda d: d.deployment_id, lambda d: None)


def instance_of(
    deployment: Deployment, instances: Iterable[ValidatorInstance]
) -> ValidatorInstance | None:
    """The validator's instance of `deployment`: by instance id, else by the launch config it
    was started with (an instance not yet recorded against the deployment)."""
    by_config = None
    for item in instances:
        if deployment.instance_id and item.instance_id == deployment.instance_id:
            return item
        if by_config is None and deployment.config_id and item.config_id == deployment.config_id:
            by_config = item
    return by_config


def chute_label(chute: Chute | None, chute_id: str) -> str:
    """How tables and plans name a chute: its name, else its id (unknown or unnamed)."""
    return chute.name if chute is not None and chute.name else chute_id
