"""Kubeconfigs in the shapes the official multi-cluster miner uses: one per server as stored in
`servers.kubeconfig`, and the merged file an operator points kubectl at."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

# The ansible-made kubeconfig names no context: `current-context: miner` (a known sharp edge
# the stored copy keeps), so clients must pick the context named after the server.
STORED_CURRENT_CONTEXT = "miner"


def stored_kubeconfig(
    name: str, server_url: str, token: str, ca_data: str | None = None
) -> dict[str, Any]:
    """A server's kubeconfig after the miner's round trip (`json.loads(servers.kubeconfig)`):
    cluster, user and context all named after the server, context namespace `default`, and
    only the fields the miner keeps (server, certificate-authority-data, token)."""
    cluster: dict[str, Any] = {"server": server_url}
    if ca_data is not None:
        cluster["certificate-authority-data"] = ca_data
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}
        ],
        "current-context": STORED_CURRENT_CONTEXT,
    }


def stored_kubeconfig_text(
    name: str, server_url: str, token: str, ca_data: str | None = None
) -> str:
    """`servers.kubeconfig` exactly as registration writes it: JSON text, default separators."""
    return json.dumps(stored_kubeconfig(name, server_url, token, ca_data))


def merged_kubeconfig(
    configs: Iterable[dict[str, Any]], current_context: str, namespace: str = "chutes"
) -> dict[str, Any]:
    """Every context of `configs` in one file, namespaces forced to `namespace` (as the miner's
    `GET /servers/kubeconfig` does), so `kubectl --context SERVER get pods` just works."""
    merged: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": current_context,
    }
    for config in configs:
        for section in ("clusters", "users", "contexts"):
            merged[section].extend(copy.deepcopy(config.get(section, [])))
    for context in merged["contexts"]:
        context["context"]["namespace"] = namespace
    return merged
