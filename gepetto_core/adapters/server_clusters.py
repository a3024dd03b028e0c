"""One Kubernetes client per GPU server's cluster (multi-cluster layout, docs/multi-cluster.md).

Each server row stores its cluster's kubeconfig (`servers.kubeconfig`, JSON or YAML text; the
context is named after the server). Unlike the official miner, which merges every row into
one kubeconfig keyed by cluster and user *names* and caches ten clients that are never
invalidated, every server gets its own client here:
- built lazily: nothing connects until the cluster's first request;
- rebuilt when the row's kubeconfig text changes (a rotated credential needs no restart);
- closed when the server leaves the list.

A row without a usable kubeconfig is no client and no crash: `get` names the server and the
problem. Error texts never carry kubeconfig content (tokens, keys, certificates).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes_asyncio import client

from gepetto_core import kube_objects as ko
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.adapters.kube_connect import DeferredApiClient, connect_api
from gepetto_core.errors import ClusterUnavailableError
from gepetto_core.models.inventory import Server

NO_KUBECONFIG = "no kubeconfig stored"
# Strings this short are names and flags, not secrets; longer ones are scrubbed from messages.
_SECRET_MIN_LENGTH = 8


def parse_kubeconfig(text: str | None, context: str) -> dict[str, Any] | str:
    """`servers.kubeconfig` as a kubeconfig dict, or the reason it is unusable. The reason
    never quotes the text (a YAML error message would show the offending line)."""
    if text is None or not text.strip():
        return NO_KUBECONFIG
    data = _load(text)
    if isinstance(data, _Unusable):
        return data.reason
    if not isinstance(data, dict):
        return "kubeconfig is not a mapping"
    contexts = data.get("contexts")
    if not isinstance(contexts, list):
        contexts = []
    if context not in [c.get("name") for c in contexts if isinstance(c, dict)]:
        return f"kubeconfig has no context named {context}"
    return data


@dataclass(frozen=True)
class _Unusable:
    reason: str


def _load(text: str) -> Any:
    """JSON first (registration stores JSON, and json is ~100 times faster than PyYAML: it
    shows over 100 rows), then YAML; an error as `_Unusable` whose reason quotes no text."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return _Unusable(f"kubeconfig is not valid JSON or YAML{where}")


def secret_strings(data: Any) -> set[str]:
    """Every string leaf of a kubeconfig long enough to be a credential."""
    if isinstance(data, str):
        return {data} if len(data) >= _SECRET_MIN_LENGTH else set()
    if isinstance(data, Mapping):
        return set().union(*(secret_strings(v) for v in data.values())) if data else set()
    if isinstance(data, list):
        return set().union(*(secret_strings(v) for v in data)) if data else set()
    return set()


def scrub(message: str, secrets: Iterable[str]) -> str:
    """`message` with every secret string replaced (longest first, so no fragment is left)."""
    for secret in sorted(secrets, key=len, reverse=True):
        message = message.replace(secret, "<redacted>")
    return message


class ServerApiClient(DeferredApiClient):
    """A server cluster's ApiClient: connects on first use; once closed (server removed or
    its kubeconfig replaced) every call fails as ClusterUnavailableError, not a library error."""

    def __init__(self, server: str, kubeconfig: dict[str, Any]) -> None:
        super().__init__(self._open)
        self.server = server
        self._kubeconfig = kubeconfig
        self.retired = False  # no new request may start
        self.closed = False  # its connections are closed

    async def _open(self) -> client.ApiClient:
        try:
            return await connect_api(self._kubeconfig, context=self.server)
        except Exception as e:  # bad base64, a bad certificate...: all unusable
            reason = scrub(f"{type(e).__name__}: {e}", secret_strings(self._kubeconfig))
            raise ClusterUnavailableError(
                f"cluster {self.server}: unusable kubeconfig ({reason})"
            ) from None

    async def call_api(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse_when_retired()
        api = await self.connected()
        if self.retired:  # retired while connecting: close() found nothing to close yet
            await api.close()
            self._refuse_when_retired()
        return await api.call_api(*args, **kwargs)

    def _refuse_when_retired(self) -> None:
        if self.retired:
            raise ClusterUnavailableError(
                f"cluster {self.server}: client closed (server removed or kubeconfig changed)"
            )

    async def close(self) -> None:
        self.retired = True
        await super().close()
        self.closed = True


@dataclass
class _Entry:
    text: str | None
    problem: str | None  # why there is no client
    api: ServerApiClient | None = None
    cluster: KubeCluster | None = None


class ServerClusters:
    """The clients of every server cluster, keyed by server name (= kubeconfig context)."""

    def __init__(
        self, job_settings: ko.JobSettings, *, timeout: float, write_timeout: float | None = None
    ) -> None:
        self._settings = job_settings
        self._timeout = timeout
        self._write_timeout = write_timeout
        self._entries: dict[str, _Entry] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._unclosed: list[ServerApiClient] = []  # retired with no loop running

    # -- membership ---------------------------------------------------------------------
    def sync(self, servers: Sequence[Server]) -> None:
        """Match the clients to `servers`: build new ones, rebuild those whose kubeconfig text
        changed, close those of servers no longer listed."""
        listed = {s.name for s in servers}
        for name in [n for n in self._entries if n not in listed]:
            self._retire(self._entries.pop(name))
        for server in servers:
            self.ensure(server)

    def ensure(self, server: Server) -> None:
        """This one server's client, built or rebuilt from its row (others are left alone)."""
        current = self._entries.get(server.name)
        if current is not None and current.text == server.kubeconfig:
            return
        if current is not None:
            self._retire(current)
        self._entries[server.name] = self._build(server.name, server.kubeconfig)

    def _build(self, name: str, text: str | None) -> _Entry:
        parsed = parse_kubeconfig(text, name)
        if isinstance(parsed, str):
            return _Entry(text, parsed)
        api = ServerApiClient(name, parsed)
        cluster = KubeCluster(
            api, self._settings, request_timeout=self._timeout, write_timeout=self._write_timeout
        )
        return _Entry(text, None, api, cluster)

    def _retire(self, entry: _Entry) -> None:
        """Close the entry's client: in the background when a loop runs (sync is called from
        async code), else at `close()`."""
        if entry.api is None:
            return
        api = entry.api
        api.retired = True  # no new request starts on it from now on
        with contextlib.suppress(RuntimeError):  # no running loop: close() closes it
            task = asyncio.get_running_loop().create_task(api.close(), name=f"close-{api.server}")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            return
        self._unclosed.append(api)

    # -- lookup -------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Every known server, with or without a usable kubeconfig."""
        return list(self._entries)

    def problem(self, name: str) -> str | None:
        """Why server `name` has no client (None: it has one)."""
        entry = self._entries.get(name)
        if entry is None:
            return "not a known server"
        return entry.problem

    def get(self, name: str) -> KubeCluster:
        entry = self._entries.get(name)
        if entry is None or entry.cluster is None:
            reason = entry.problem if entry is not None else "not a known server"
            raise ClusterUnavailableError(f"cluster {name}: {reason}")
        return entry.cluster

    def api(self, name: str) -> client.ApiClient:
        """Server `name`'s ApiClient (for reads the KubeCluster adapter has no call for)."""
        self.get(name)
        api = self._entries[name].api
        assert api is not None
        return api

    # -- lifecycle ------------------------------------------------------------------------
    async def settle(self) -> None:
        """Wait until retired clients are closed."""
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
        for api in self._unclosed:
            await api.close()
        self._unclosed.clear()

    async def close(self) -> None:
        entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            if entry.api is not None:
                await entry.api.close()
        await self.settle()
