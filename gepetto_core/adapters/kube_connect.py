"""Connecting to the Kubernetes API: one `ApiClient` from a kubeconfig or the in-cluster
configuration, shared by the cluster adapter (`kube.py`) and the leader lease."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.kube_config import KubeConfigLoader

from gepetto_core.errors import ConfigError


async def connect_api(
    kubeconfig: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    context: str | None = None,
    in_cluster: bool = False,
) -> client.ApiClient:
    """One ApiClient from a kubeconfig file or dict, or from the pod's service account.

    The caller owns the client and closes it (`await api.close()`)."""
    configuration = client.Configuration()
    try:
        if in_cluster:
            await asyncio.to_thread(
                config.load_incluster_config, client_configuration=configuration
            )
        elif kubeconfig is None:
            raise ConfigError("KUBECONFIG", "no kubeconfig given and in_cluster is false")
        else:
            if isinstance(kubeconfig, Mapping):
                data, base = dict(kubeconfig), ""
            else:
                path, text = await asyncio.to_thread(_read_kubeconfig, kubeconfig)
                data, base = yaml.safe_load(text), str(path.parent)
            loader = KubeConfigLoader(
                config_dict=data, active_context=context, config_base_path=base
            )
            await loader.load_and_set(configuration)
    except ConfigError:
        raise
    except (OSError, yaml.YAMLError, config.ConfigException, KeyError, TypeError) as e:
        raise ConfigError("KUBECONFIG", f"cannot load the Kubernetes configuration: {e}") from e
    return client.ApiClient(configuration)


def kubeconfig_source(kubeconfig: str | None) -> tuple[str | None, bool]:
    """Where the Kubernetes configuration comes from: (path, in_cluster). KUBECONFIG, else the
    pod's service account, else ~/.kube/config."""
    if kubeconfig:
        return kubeconfig, False
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None, True
    default = Path.home() / ".kube" / "config"
    if default.exists():
        return str(default), False
    raise ConfigError("KUBECONFIG", "is not set, no ~/.kube/config, and not running in a pod")


class DeferredApiClient(client.ApiClient):
    """An ApiClient that connects (`connect()`: loads the configuration) on its first request.

    Building the cluster adapter then costs nothing, so a command that never reads the cluster
    never needs a kubeconfig. Generated API classes only call `call_api` and a few pure helpers
    on their client; `call_api` is handed to the real client once it exists."""

    def __init__(self, connect: Callable[[], Awaitable[client.ApiClient]]) -> None:
        # No super().__init__(): it would open an HTTP session for a configuration not loaded.
        self.client_side_validation = True
        self._connect = connect
        self._client: client.ApiClient | None = None
        self._connecting = asyncio.Lock()

    async def connected(self) -> client.ApiClient:
        if self._client is None:
            async with self._connecting:
                if self._client is None:
                    self._client = await self._connect()
        return self._client

    async def call_api(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self.connected()).call_api(*args, **kwargs)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


def _read_kubeconfig(location: str | os.PathLike[str]) -> tuple[Path, str]:
    path = Path(location).expanduser()
    return path, path.read_text()
