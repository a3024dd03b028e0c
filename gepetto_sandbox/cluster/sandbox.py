"""`SandboxCluster`: an in-process Kubernetes API server for tests, the demo and benchmarks,
with a control API to shape the world (nodes, faults) and inspect what clients asked."""

from __future__ import annotations

import copy
import json
import os
import ssl
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from gepetto_sandbox.cluster.api import ApiFault, ApiState, RequestRecord, build_app
from gepetto_sandbox.cluster.controllers import NAMESPACES, NODES
from gepetto_sandbox.cluster.core import ClusterCore
from gepetto_sandbox.cluster.fleet import FleetNode, build_fleet, node_conditions
from gepetto_sandbox.cluster.resources import BY_PATH, ResourceType
from gepetto_sandbox.cluster.script import PodFault, PodTimings
from gepetto_sandbox.cluster.store import Obj

DEFAULT_NAMESPACES = ("default", "kube-system", "chutes")


def kubeconfig_dict(url: str, namespace: str = "chutes", name: str = "sandbox") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": name, "user": {"token": "sandbox-token"}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
    }


class SandboxCluster:
    def __init__(
        self,
        *,
        seed: int = 0,
        nodes: Iterable[FleetNode] | None = None,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        timings: PodTimings | None = None,
        history_size: int = 2000,
        kubeconfig_path: str | os.PathLike[str] | None = None,
        tokens: Iterable[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`tokens`: bearer tokens the API accepts (others get 401); None: no authentication.
        `ssl_context`: serve HTTPS with it (kubectl sends tokens only over TLS)."""
        self.core = ClusterCore(seed=seed, timings=timings, history=history_size)
        self.state = ApiState(self.core, tokens=set(tokens) if tokens is not None else None)
        self.fleet = list(nodes) if nodes is not None else build_fleet(seed=seed)
        self._namespaces = tuple(namespaces)
        self._kubeconfig_path = kubeconfig_path
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self._address: tuple[str, int] | None = None
        self.url: str | None = None
        for namespace in self._namespaces:
            self.core.create(NAMESPACES, None, {"metadata": {"name": namespace}})
        for node in self.fleet:
            self._add_node_object(node.to_object())

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.core.controllers.start()
        await self._serve(host, port)
        assert self.url is not None
        if self._kubeconfig_path is not None:
            self.write_kubeconfig(self._kubeconfig_path)
        return self.url

    async def _serve(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(build_app(self.state), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self._ssl)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self._address = (host, bound_port)
        self.url = f"{'https' if self._ssl else 'http'}://{host}:{bound_port}"

    async def stop(self) -> None:
        self.state.open.set()
        self.core.store.close_subscribers()
        await self.core.controllers.stop()
        await self.stop_api()

    # -- control API: the API server itself ----------------------------------------------
    async def stop_api(self) -> None:
        """The API server goes away (connection refused) while the cluster's controllers, its
        pods and its objects live on, as when k3s's apiserver is down but containers run."""
        if self._runner is None:
            return
        # Open watches end, as a dying server drops them; the controllers' feed stays.
        feed = self.core.controllers.feed
        self.core.store.close_subscribers(keep=[feed] if feed is not None else [])
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def start_api(self) -> str:
        """Serve again on the same address (the kubeconfig stays valid)."""
        if self._runner is None:
            if self._address is None:
                raise RuntimeError("start the sandbox before restarting its API")
            await self._serve(*self._address)
        assert self.url is not None
        return self.url

    def hang_api(self) -> None:
        """New requests wait, unanswered, until `release_api` (clients see their timeout)."""
        self.state.open.clear()

    def release_api(self) -> None:
        self.state.open.set()

    def set_tokens(self, tokens: Iterable[str] | None) -> None:
        """Replace the accepted bearer tokens: a rotated credential's old token gets 401."""
        self.state.tokens = set(tokens) if tokens is not None else None

    async def __aenter__(self) -> SandboxCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def kubeconfig(self, namespace: str = "chutes") -> dict[str, Any]:
        if self.url is None:
            raise RuntimeError("start the sandbox before asking for its kubeconfig")
        return kubeconfig_dict(self.url, namespace)

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "chutes") -> Path:
        """JSON is valid YAML, so kubectl and kubernetes-asyncio both read this file."""
        target = Path(path)
        target.write_text(json.dumps(self.kubeconfig(namespace), indent=2))
        return target

    # -- control API: nodes ----------------------------------------------------------
    def add_node(self, node: FleetNode | Obj) -> Obj:
        if isinstance(node, FleetNode):
            self.fleet.append(node)
            return self._add_node_object(node.to_object())
        return self._add_node_object(copy.deepcopy(node))

    def _add_node_object(self, obj: Obj) -> Obj:
        obj.setdefault("metadata", {}).setdefault("uid", str(uuid.uuid4()))
        prepared = self.core.admission.prepare_create(NODES, None, obj)
        return self.core.store.create(NODES, prepared, preserve_uid=True)

    def set_node_ready(self, name: str, ready: bool) -> Obj:
        node = self.core.store.get(NODES, "", name)
        node["status"]["conditions"] = node_conditions(ready)
        return self.core.store.update(NODES, node)

    def remove_node(self, name: str) -> None:
        self.core.store.remove(NODES, "", name)

    # -- control API: faults ---------------------------------------------------------
    def script_fault(self, key: str, fault: PodFault) -> None:
        """Pods labelled with this deployment id, chute id or job name will fail this way."""
        self.core.controllers.faults[key] = fault

    def clear_faults(self) -> None:
        self.core.controllers.faults.clear()
        self.state.faults.clear()

    def inject_api_error(
        self,
        path_pattern: str,
        *,
        method: str | None = None,
        status: int | None = 500,
        times: int | None = 1,
        delay: float = 0.0,
        reason: str | None = None,
    ) -> ApiFault:
        default_reason = {409: "Conflict", 403: "Forbidden", 404: "NotFound", 401: "Unauthorized"}
        fault = ApiFault(
            path_pattern=path_pattern,
            method=method,
            status=status,
            times=times,
            delay=delay,
            reason=reason or default_reason.get(status or 500, "InternalError"),
        )
        self.state.faults.append(fault)
        return fault

    # -- control API: inspection -----------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        return self.state.requests

    def objects(
        self, resource: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        """Objects of a kind by plural name ("pods", "jobs", ...), straight from the store."""
        items, _ = self.core.select(_by_plural(resource), namespace, label_selector, None)
        return items


def _by_plural(plural: str) -> ResourceType:
    for (_, _, name), rt in BY_PATH.items():
        if name == plural:
            return rt
    raise KeyError(plural)
