"""A real Kubernetes control plane for the `realkube` test tier: etcd, kube-apiserver and
kube-controller-manager built from their Go modules (`build`), started on 127.0.0.1 with RBAC
and client certificates (`launch`), bootstrapped for gepetto (`bootstrap`), with a fake kubelet
(`kubelet`). `scripts/control-plane build|up|down` drives it by hand."""

from gepetto_sandbox.control_plane.binaries import Binaries, build, cached, why_unbuildable
from gepetto_sandbox.control_plane.cluster import RealCluster
from gepetto_sandbox.control_plane.launch import ControlPlane

__all__ = ["Binaries", "ControlPlane", "RealCluster", "build", "cached", "why_unbuildable"]
