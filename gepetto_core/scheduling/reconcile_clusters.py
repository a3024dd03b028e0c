"""Reconcile over several clusters (the multi-cluster layout: one k3s cluster per GPU server),
pure: the limits the planner (`reconcile_plan.py`) puts on its own actions there.

- A cluster that could not be read is *unknown*, never *empty*: nothing of its server is
  removed for any reason (its objects could not be deleted anyway), not its deployments, not
  the validator instances that run there, not the server itself, and no chute whose deletion
  would take one of its deployment rows with it. Actions that change nothing there still run.
- The mass-removal guard also counts per cluster: one cluster whose listing lost most of its
  deployments is held back on its own (`recycle --force` lifts it), the others go on. A
  monitor cache that briefly shows a cluster with no Jobs (its snapshot is replaced in two
  steps) must not undeploy what runs there.
- A server is removed only when its own cluster lists a node under its name with another uid
  (the cluster was rebuilt): a cluster that lists no node at all proves nothing (a cache that
  dropped the node must not delete the server).

With no unknown server and one cluster for the fleet (the single layout), nothing changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from gepetto_core.models.cluster import ClusterHealth
from gepetto_core.models.inventory import Deployment, Server
from gepetto_core.models.validator import ValidatorInstance
from gepetto_core.scheduling.reconcile_actions import (
    Action,
    DeleteChute,
    PurgeInstance,
    RemoveDeployment,
    RemoveServer,
)

if TYPE_CHECKING:
    from gepetto_core.scheduling.reconcile_plan import ReconcileInputs, ReconcilePolicy

# The name under which the single layout reports its one cluster's health.
SINGLE_CLUSTER = "*"


def is_single_layout(health: Sequence[ClusterHealth]) -> bool:
    """One cluster for the whole fleet (its health entry is named "*"), rather than one
    cluster per GPU server (entries named after the servers)."""
    return any(h.name == SINGLE_CLUSTER for h in health)


def spare_unknown_clusters(
    actions: Sequence[Action], inputs: ReconcileInputs
) -> tuple[list[Action], list[str]]:
    """The actions minus every removal that touches a server whose cluster is unknown, and the
    problem line naming those clusters (none when every cluster was read)."""
    unknown = inputs.unknown_servers
    if not unknown:
        return list(actions), []
    server_of = {d.deployment_id: d.server_id for d in inputs.deployments}
    pinned_chutes = {d.chute_id for d in inputs.deployments if d.server_id in unknown}
    instance_on_unknown = _instance_placement(inputs)
    kept: list[Action] = []
    spared = 0
    for action in actions:
        match action:
            case RemoveDeployment(deployment_id=d) if server_of.get(d) in unknown:
                spared += 1
            case RemoveServer(server_id=s) if s in unknown:
                spared += 1
            case DeleteChute(chute_id=c) if c in pinned_chutes:
                spared += 1  # its rows would go with it (ON DELETE CASCADE)
            case PurgeInstance() if instance_on_unknown(action):
                spared += 1
            case _:
                kept.append(action)
    names = {s.server_id: s.name for s in inputs.servers}
    clusters = "; ".join(
        f"{names.get(server_id, server_id)}: {reason}"
        for server_id, reason in sorted(unknown.items(), key=lambda kv: names.get(kv[0], kv[0]))
    )
    line = f"{len(unknown)} cluster(s) not read, nothing on them is removed: {clusters}"
    if spared:
        line += f" ({spared} removal(s) wait for them)"
    return kept, [line]


def _instance_placement(inputs: ReconcileInputs) -> Callable[[PurgeInstance], bool]:
    """Whether an untracked validator instance may run on an unknown server. An instance names
    its server by `host` (the server's IP address, as the deployer announces it): one on a
    server read this pass can go; one on an unknown server, or one whose host names no server
    read this pass (it may well be on an unknown one), stays."""
    unknown = inputs.unknown_servers
    read_hosts = {
        s.ip_address for s in inputs.servers if s.ip_address and s.server_id not in unknown
    }
    listed: dict[tuple[str, str], ValidatorInstance] = {
        (hotkey, i.instance_id): i
        for hotkey, view in inputs.remote.items()
        for i in view.instances or ()
    }

    def on_unknown(purge: PurgeInstance) -> bool:
        instance = listed.get((purge.validator, purge.instance_id))
        return instance is None or instance.host not in read_hosts

    return on_unknown


def guard_each_cluster(
    actions: Sequence[Action],
    inputs: ReconcileInputs,
    listed: Collection[str],
    policy: ReconcilePolicy,
) -> tuple[list[Action], list[str]]:
    """In the multi-cluster layout: hold back the removals of each cluster whose listing lost
    more than `policy.max_removal_fraction` of its deployments (`listed`: the deployment ids
    its Job and legacy listings show), and the removal of servers whose cluster lists no node
    under their name. One problem line per cluster held."""
    if not inputs.cluster_per_server:
        return list(actions), []
    servers = {s.server_id: s for s in inputs.servers}
    server_of = {d.deployment_id: d.server_id for d in inputs.deployments}
    held, problems = _clusters_that_lost_most(actions, inputs.deployments, listed, policy, servers)
    node_names = {n.name for n in inputs.nodes or ()}
    kept: list[Action] = []
    for action in actions:
        match action:
            case RemoveDeployment(deployment_id=d) if server_of.get(d) in held:
                continue
            case RemoveServer(server_id=s) if s in held:
                continue
            case RemoveServer(server_id=s) if s in servers and servers[s].name not in node_names:
                problems.append(
                    f"cluster {servers[s].name} lists no node named after it; "
                    "not removing the server"
                )
            case _:
                kept.append(action)
    return kept, problems


def _clusters_that_lost_most(
    actions: Sequence[Action],
    deployments: Sequence[Deployment],
    listed: Collection[str],
    policy: ReconcilePolicy,
    servers: Mapping[str, Server],
) -> tuple[set[str], list[str]]:
    """The servers whose cluster lost more than the allowed share of its deployments (missing
    from its listing, not seen to fail), with a problem line for each."""
    size = Counter(d.server_id for d in deployments)
    server_of = {d.deployment_id: d.server_id for d in deployments}
    lost: Counter[str] = Counter()
    for action in actions:
        if (
            isinstance(action, RemoveDeployment)
            and not action.observed
            and action.deployment_id not in listed
            and action.deployment_id in server_of
        ):
            lost[server_of[action.deployment_id]] += 1
    held: set[str] = set()
    problems: list[str] = []
    limit = f"{policy.max_removal_fraction:.0%}"
    for server_id, count in sorted(lost.items()):
        total = size[server_id]
        if total >= policy.cluster_guard_minimum and count > policy.max_removal_fraction * total:
            held.add(server_id)
            name = servers[server_id].name if server_id in servers else server_id
            problems.append(
                f"held back the removals on cluster {name}: {count} of {total} deployments "
                f"missing from its listing (limit {limit}); run recycle --force after checking"
            )
    return held, problems
