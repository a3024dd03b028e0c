"""A protocol-faithful Kubernetes API sandbox (the subset gepetto and kubectl use)."""

from gepetto_sandbox.cluster.api import ApiFault, RequestRecord
from gepetto_sandbox.cluster.fleet import FleetNode, build_fleet
from gepetto_sandbox.cluster.sandbox import SandboxCluster, kubeconfig_dict
from gepetto_sandbox.cluster.script import PodFault, PodTimings

__all__ = [
    "ApiFault",
    "FleetNode",
    "PodFault",
    "PodTimings",
    "RequestRecord",
    "SandboxCluster",
    "build_fleet",
    "kubeconfig_dict",
]
