"""`RealCluster`: the real control plane plus the fake kubelet, ready for gepetto: the
`chutes` namespace exists and gepetto's ServiceAccount is bound to the Role of `k8s/`. The same
control API as `SandboxCluster` where the two overlap (kubeconfig, fleet, script_fault,
set_node_ready), plus what only a real one has: an etcd to compact, a token for gepetto."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config

from gepetto_sandbox.cluster.fleet import FleetNode
from gepetto_sandbox.cluster.script import PodFault, PodTimings
from gepetto_sandbox.control_plane.binaries import Binaries, cache_root
from gepetto_sandbox.control_plane.bootstrap import (
    SERVICE_ACCOUNT,
    apply_rbac,
    ensure_namespace,
    ensure_runtime_class,
    service_account_token,
)
from gepetto_sandbox.control_plane.kubelet import FakeKubelet
from gepetto_sandbox.control_plane.launch import ControlPlane

DEFAULT_NAMESPACES = ("chutes",)


async def admin_client(kubeconfig: dict[str, Any]) -> client.ApiClient:
    api: client.ApiClient = await config.new_client_from_config_dict(kubeconfig)
    return api


class RealCluster:
    def __init__(
        self,
        binaries: Binaries,
        state_dir: Path,
        *,
        nodes: Iterable[FleetNode],
        timings: PodTimings | None = None,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
    ) -> None:
        self.control_plane = ControlPlane(
            binaries, state_dir, cache_root() / "pki", outlive_caller=False
        )
        self._nodes = list(nodes)
        self._timings = timings
        self._namespaces = tuple(namespaces)
        self.api: client.ApiClient | None = None
        self.kubelet: FakeKubelet | None = None
        self.gepetto_token: str | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.control_plane.up)
        self.api = await admin_client(self.control_plane.admin_kubeconfig())
        for namespace in ("default", *self._namespaces):
            await ensure_namespace(self.api, namespace)
        await ensure_runtime_class(self.api)
        await apply_rbac(self.api, "chutes")
        self.gepetto_token = await service_account_token(self.api, "chutes")
        self.kubelet = FakeKubelet(
            self.api, self._nodes, pki_dir=self.control_plane.pki.directory, timings=self._timings
        )
        await self.kubelet.start()

    async def stop(self) -> None:
        if self.kubelet is not None:
            await self.kubelet.stop()
        if self.api is not None:
            await self.api.close()
        await asyncio.to_thread(self.control_plane.down)

    # -- the control API shared with SandboxCluster ------------------------------------
    def kubeconfig(self, namespace: str = "chutes") -> dict[str, Any]:
        return self.control_plane.admin_kubeconfig(namespace)

    def gepetto_kubeconfig(self, namespace: str = "chutes") -> dict[str, Any]:
        """Credentials of gepetto's ServiceAccount (only what `k8s/` grants it)."""
        assert self.gepetto_token is not None, "start the cluster first"
        return self.control_plane.token_kubeconfig(
            self.gepetto_token, f"system:serviceaccount:chutes:{SERVICE_ACCOUNT}", namespace
        )

    @property
    def fleet(self) -> list[FleetNode]:
        assert self.kubelet is not None, "start the cluster first"
        return self.kubelet.fleet

    def script_fault(self, key: str, fault: PodFault) -> None:
        assert self.kubelet is not None, "start the cluster first"
        self.kubelet.script_fault(key, fault)

    async def set_node_ready(self, name: str, ready: bool) -> None:
        assert self.kubelet is not None, "start the cluster first"
        await self.kubelet.set_node_ready(name, ready)

    # -- only a real one ----------------------------------------------------------------
    async def compact_etcd(self) -> int:
        """Compact etcd up to its current revision (what the API server does every few
        minutes); returns that revision. Older resource versions then expire."""
        url = self.control_plane.etcd_url
        async with aiohttp.ClientSession() as session:
            probe = {"key": base64.b64encode(b"/registry").decode(), "limit": 1}
            async with session.post(f"{url}/v3/kv/range", json=probe) as answer:
                revision = int((await answer.json())["header"]["revision"])
            body = {"revision": revision, "physical": True}
            async with session.post(f"{url}/v3/kv/compaction", json=body) as answer:
                answer.raise_for_status()
        return revision
