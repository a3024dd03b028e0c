"""The official chutes-miner's multi-cluster layout, simulated: one sandbox cluster per GPU
server (`MultiClusterSandbox`), an agent per cluster and a chutes-monitor filling the Redis
cache (`MonitoredClusters`, `SandboxMonitor`, `SandboxAgent`)."""

from gepetto_sandbox.multicluster.agent import AgentTimings, SandboxAgent
from gepetto_sandbox.multicluster.clusters import (
    CONTROL_PLANE_NAME,
    MemberCluster,
    MultiClusterSandbox,
)
from gepetto_sandbox.multicluster.kubeconfig import merged_kubeconfig, stored_kubeconfig
from gepetto_sandbox.multicluster.monitor import SandboxMonitor
from gepetto_sandbox.multicluster.redis_server import PrivateRedis
from gepetto_sandbox.multicluster.world import MonitoredClusters

__all__ = [
    "CONTROL_PLANE_NAME",
    "AgentTimings",
    "MemberCluster",
    "MonitoredClusters",
    "MultiClusterSandbox",
    "PrivateRedis",
    "SandboxAgent",
    "SandboxMonitor",
    "merged_kubeconfig",
    "stored_kubeconfig",
]
