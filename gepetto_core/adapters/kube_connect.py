"""Connecting to the Kubernetes API: one `ApiClient` from a kubeconfig or the in-cluster
configuration, shared by the cluster adapter (`kube.py`) and the leader lease."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
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


def _read_kubeconfig(location: str | os.PathLike[str]) -> tuple[Path, str]:
    path = Path(location).expanduser()
    return path, path.read_text()
