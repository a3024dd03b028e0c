"""N independent sandbox clusters, one per GPU server, as the official chutes-miner's default
multi-cluster layout has them: every server is a single-node k3s cluster with its own API
endpoint and credentials, plus a CPU-only control-plane cluster whose node carries the label
the official code detects that layout by."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gepetto_sandbox.cluster import FleetNode, PodTimings, RequestRecord, SandboxCluster
from gepetto_sandbox.cluster.fleet import node_object
from gepetto_sandbox.multicluster.agent_http import AgentFront
from gepetto_sandbox.multicluster.kubeconfig import (
    merged_kubeconfig,
    stored_kubeconfig,
    stored_kubeconfig_text,
)
from gepetto_sandbox.multicluster.tls import sandbox_tls, tls_available

# k3s labels its own nodes so; the official operator picks the multi-cluster layout when the
# control-plane cluster has such a node.
K3S_INSTANCE_TYPE = {"node.kubernetes.io/instance-type": "k3s"}
K3S_SERVER_ROLES = {
    "node-role.kubernetes.io/control-plane": "true",
    "node-role.kubernetes.io/master": "true",
}
CONTROL_PLANE_NAME = "chutes-miner-cpu-0"
CONTROL_PLANE_IP = "203.0.113.2"
AGENT_PORT = 32000  # the agent's NodePort on every GPU server

LossHook = Callable[[str], Awaitable[None]]


def _token(kind: str, name: str) -> str:
    return f"{kind}-{name}-{secrets.token_hex(12)}"


@dataclass
class MemberCluster:
    """One GPU server's cluster. `miner_token` is the credential in the stored kubeconfig
    (user `miner` in the official charts); `agent_token` is the on-node agent's service
    account, which survives a rotation of the miner's credential."""

    node: FleetNode
    sandbox: SandboxCluster
    miner_token: str
    agent_token: str
    ca_data: str | None = None
    agent_front: AgentFront | None = None

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def url(self) -> str:
        if self.sandbox.url is None:
            raise RuntimeError(f"cluster {self.name} has not been started")
        return self.sandbox.url

    @property
    def agent_api(self) -> str:
        """`servers.agent_api` as registration stores it: the agents' HTTP front once it
        listens (`agent_http.py`), else the node's NodePort address, where nothing listens."""
        front = self.agent_front.agent_api(self.name) if self.agent_front else None
        return front or f"http://{self.node.external_ip}:{AGENT_PORT}"

    def kubeconfig(self) -> dict[str, Any]:
        return stored_kubeconfig(self.name, self.url, self.miner_token, self.ca_data)

    def kubeconfig_text(self) -> str:
        return stored_kubeconfig_text(self.name, self.url, self.miner_token, self.ca_data)

    def agent_kubeconfig(self) -> dict[str, Any]:
        return stored_kubeconfig(self.name, self.url, self.agent_token, self.ca_data) | {
            "current-context": self.name
        }

    def _accept_current_tokens(self) -> None:
        self.sandbox.set_tokens({self.miner_token, self.agent_token})


def member_node(node: FleetNode) -> FleetNode:
    """A fleet node as its own single-node k3s cluster labels it."""
    return dataclasses.replace(
        node, extra_labels={**K3S_INSTANCE_TYPE, **K3S_SERVER_ROLES, **node.extra_labels}
    )


def control_plane_node(name: str = CONTROL_PLANE_NAME, ip: str = CONTROL_PLANE_IP) -> Any:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "chutes/external-ip": ip,
        **K3S_INSTANCE_TYPE,
        **K3S_SERVER_ROLES,
    }
    capacity = {
        "cpu": "8",
        "memory": f"{32 * 1024 * 1024}Ki",
        "ephemeral-storage": f"{200 * 1024 * 1024}Ki",
        "pods": "110",
    }
    uid = "00000000-0000-4000-8000-00000000c0de"
    return node_object(name, uid, labels, capacity, ip)


class MultiClusterSandbox:
    """The clusters of a multi-cluster miner. Each member cluster listens on its own loopback
    port and accepts only its own tokens; the control plane runs no chutes."""

    def __init__(
        self,
        nodes: Iterable[FleetNode],
        *,
        seed: int = 0,
        timings: PodTimings | None = None,
        history_size: int = 2000,
        control_plane_name: str = CONTROL_PLANE_NAME,
        tls: bool | None = None,
        miner_hotkey: str | None = None,
    ) -> None:
        """`tls`: serve HTTPS (needs the openssl CLI; None: when openssl is there). Over plain
        HTTP kubectl sends no token, so `kubectl --context` works only with TLS.
        `miner_hotkey`: the one hotkey the agents trust (None: they refuse every request)."""
        self.agent_front = AgentFront(lambda: set(self.members), trusted_hotkey=miner_hotkey)
        use_tls = tls_available() if tls is None else tls
        self.tls = sandbox_tls() if use_tls else None
        server_ssl = self.tls.server_context() if self.tls else None
        ca_data = self.tls.ca_data if self.tls else None
        self.members: dict[str, MemberCluster] = {}
        for i, node in enumerate(nodes):
            if node.name in self.members:
                raise ValueError(f"two servers are named {node.name}")
            member = member_node(node)
            miner_token, agent_token = _token("miner", node.name), _token("agent", node.name)
            sandbox = SandboxCluster(
                seed=seed + i,
                nodes=[member],
                timings=timings,
                history_size=history_size,
                tokens={miner_token, agent_token},
                ssl_context=server_ssl,
            )
            self.members[node.name] = MemberCluster(
                member, sandbox, miner_token, agent_token, ca_data, self.agent_front
            )
        self.control_plane_name = control_plane_name
        self.control_plane_token = _token("control", control_plane_name)
        self.control_plane = SandboxCluster(
            seed=seed,
            nodes=[],
            timings=timings,
            tokens={self.control_plane_token},
            ssl_context=server_ssl,
        )
        self.control_plane.add_node(control_plane_node(control_plane_name))
        self.loss_hooks: list[LossHook] = []
        self.recovery_hooks: list[LossHook] = []
        self._background: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1") -> None:
        await self.agent_front.start(host)
        await self.control_plane.start(host)
        for member in self.members.values():
            await member.sandbox.start(host)

    async def stop(self) -> None:
        for task in list(self._background):
            await task
        for member in self.members.values():
            await member.sandbox.stop()
        await self.control_plane.stop()
        await self.agent_front.stop()

    async def __aenter__(self) -> MultiClusterSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- reading -----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.members)

    def cluster(self, name: str) -> SandboxCluster:
        return self.members[name].sandbox

    def kubeconfig(self, name: str) -> dict[str, Any]:
        """Server `name`'s kubeconfig as `yaml.safe_load(servers.kubeconfig)` gives it."""
        return self.members[name].kubeconfig()

    def kubeconfig_text(self, name: str) -> str:
        """`servers.kubeconfig` for server `name`."""
        return self.members[name].kubeconfig_text()

    def control_plane_kubeconfig(self) -> dict[str, Any]:
        if self.control_plane.url is None:
            raise RuntimeError("start the sandbox first")
        ca_data = self.tls.ca_data if self.tls else None
        return stored_kubeconfig(
            self.control_plane_name, self.control_plane.url, self.control_plane_token, ca_data
        ) | {"current-context": self.control_plane_name}

    def merged_kubeconfig(self, namespace: str = "chutes") -> dict[str, Any]:
        """The control plane and every server; current context = the control plane."""
        configs = [self.control_plane_kubeconfig()]
        configs += [m.kubeconfig() for m in self.members.values()]
        return merged_kubeconfig(configs, self.control_plane_name, namespace)

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "chutes") -> Path:
        """JSON is valid YAML: kubectl and kubernetes-asyncio both read this file."""
        target = Path(path)
        target.write_text(json.dumps(self.merged_kubeconfig(namespace), indent=2))
        target.chmod(0o600)
        return target

    # -- faults --------------------------------------------------------------------------------
    async def stop_api(self, name: str) -> None:
        """Server `name`'s API refuses connections; its pods and objects live on."""
        await self.cluster(name).stop_api()

    async def start_api(self, name: str) -> None:
        await self.cluster(name).start_api()

    def hang_api(self, name: str) -> None:
        """Server `name`'s API accepts connections and never answers (until `release_api`)."""
        self.cluster(name).hang_api()

    def release_api(self, name: str) -> None:
        self.cluster(name).release_api()

    def rotate_credentials(self, name: str) -> str:
        """A new miner token for server `name`; the old one now gets 401 Unauthorized. Returns
        the new `servers.kubeconfig` text (store it where the miner would)."""
        member = self.members[name]
        member.miner_token = _token("miner", name)
        member._accept_current_tokens()
        return member.kubeconfig_text()

    async def lose_cluster(self, name: str) -> None:
        """The whole server goes dark: API down and (through `loss_hooks`) its agent gone."""
        await self.stop_api(name)
        for hook in list(self.loss_hooks):
            await hook(name)

    async def recover_cluster(self, name: str) -> None:
        await self.start_api(name)
        for hook in list(self.recovery_hooks):
            await hook(name)

    def lose_after(self, name: str, method: str, path_pattern: str) -> asyncio.Event:
        """Lose server `name` right after it answers the first request matching `method` and
        `path_pattern` (e.g. the Job create of a deploy). The event is set once it is lost."""
        state = self.cluster(name).state
        lost = asyncio.Event()

        def observe(record: RequestRecord) -> None:
            if record.method != method or not re.search(path_pattern, record.path):
                return
            state.observers.remove(observe)

            async def go() -> None:
                await self.lose_cluster(name)
                lost.set()

            task = asyncio.create_task(go(), name=f"lose-{name}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        state.observers.append(observe)
        return lost
