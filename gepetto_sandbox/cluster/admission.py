"""What the API server does to an object before storing it: validation, defaults, and the
allocation of Service node ports (30000–32767, freed on delete) and cluster IPs."""

from __future__ import annotations

import copy
import itertools
import random
from typing import Any

from gepetto_sandbox.cluster.resources import ResourceType
from gepetto_sandbox.cluster.store import Obj, StatusError

NODE_PORT_RANGE = range(30000, 32768)


def invalid(kind: str, name: str, field: str, message: str) -> StatusError:
    return StatusError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {field}: {message}',
        {"name": name, "kind": kind, "causes": [{"field": field, "message": message}]},
    )


class Admission:
    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        # The RuntimeClasses the cluster has (a GPU node's operator installs `nvidia`); the
        # RuntimeClass admission plugin refuses pods that name another.
        self.runtime_classes: set[str] = {"nvidia"}
        self._node_ports: dict[int, str] = {}  # node port → owning service uid/key
        self._ip_counter = itertools.count(10)

    # -- entry points -----------------------------------------------------------------
    def prepare_create(self, rt: ResourceType, namespace: str | None, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + _suffix(self._rng)
        if not meta.get("name"):
            raise invalid(rt.kind, "", "metadata.name", "Required value: name or generateName")
        if rt.namespaced:
            if namespace and meta.get("namespace", namespace) != namespace:
                raise StatusError(
                    400, "BadRequest", "the namespace of the object does not match the request"
                )
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        meta.pop("resourceVersion", None)
        for field in ("labels", "annotations"):
            if meta.get(field) is not None:
                meta[field] = {str(k): str(v) for k, v in meta[field].items()}
        hook = getattr(self, f"_create_{rt.plural}", None)
        if hook is not None:
            hook(obj)
        return obj

    def prepare_update(self, rt: ResourceType, old: Obj, new: Obj) -> Obj:
        new = copy.deepcopy(new)
        if rt.plural == "services":
            self._allocate_service(new, previous=old)
        if rt.plural == "jobs":
            # The selector and template labels the controller set may not be dropped.
            selector = (old.get("spec") or {}).get("selector")
            if selector is not None:  # a Job created without one has none to keep
                new.setdefault("spec", {})["selector"] = selector
        return new

    def released(self, rt: ResourceType, obj: Obj) -> None:
        if rt.plural == "services":
            for port in obj.get("spec", {}).get("ports", []) or []:
                self._node_ports.pop(port.get("nodePort") or -1, None)

    # -- per-resource defaults --------------------------------------------------------
    def _create_services(self, obj: Obj) -> None:
        self._allocate_service(obj, previous=None)

    def _create_jobs(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if "template" not in spec:
            raise invalid("Job", obj["metadata"]["name"], "spec.template", "Required value")
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("suspend", False)
        spec.setdefault("completionMode", "NonIndexed")
        pod_spec = spec["template"].setdefault("spec", {})
        pod_spec.setdefault("restartPolicy", "Never")
        _default_pod_spec(pod_spec)
        obj.setdefault("status", {})

    def _create_pods(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not spec.get("containers"):
            raise invalid("Pod", obj["metadata"]["name"], "spec.containers", "Required value")
        runtime_class = spec.get("runtimeClassName")
        if runtime_class is not None and runtime_class not in self.runtime_classes:
            raise StatusError(
                403,
                "Forbidden",
                f'pods "{obj["metadata"]["name"]}" is forbidden: pod rejected: '
                f'RuntimeClass "{runtime_class}" not found',
            )
        spec.setdefault("restartPolicy", "Always")
        _default_pod_spec(spec)
        obj.setdefault("status", {"phase": "Pending"})

    def _create_deployments(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if "template" not in spec or "selector" not in spec:
            raise invalid("Deployment", obj["metadata"]["name"], "spec.selector", "Required value")
        spec.setdefault("replicas", 1)
        spec.setdefault("strategy", {"type": "RollingUpdate"})
        _default_pod_spec(spec["template"].setdefault("spec", {}))
        obj.setdefault("status", {})

    def _create_namespaces(self, obj: Obj) -> None:
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}

    def _create_nodes(self, obj: Obj) -> None:
        obj.setdefault("spec", {})
        obj.setdefault("status", {})

    # -- services ---------------------------------------------------------------------
    def _allocate_service(self, obj: Obj, previous: Obj | None) -> None:
        name = obj["metadata"]["name"]
        owner = f"{obj['metadata'].get('namespace')}/{name}"
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if previous is not None:
            spec.setdefault("clusterIP", previous.get("spec", {}).get("clusterIP"))
        if not spec.get("clusterIP"):
            counter = next(self._ip_counter)
            spec["clusterIP"] = f"10.43.{counter // 250}.{counter % 250 + 1}"
        spec["clusterIPs"] = [spec["clusterIP"]]
        ports: list[dict[str, Any]] = spec.setdefault("ports", [])
        names = [p.get("name") for p in ports]
        if len(ports) > 1 and (None in names or len(set(names)) != len(names)):
            raise invalid("Service", name, "spec.ports", "port names must be given and unique")
        wants_node_ports = spec["type"] in ("NodePort", "LoadBalancer")
        old_ports = {
            (p.get("protocol", "TCP"), p["port"]): p.get("nodePort")
            for p in (previous or {}).get("spec", {}).get("ports", []) or []
        }
        mine = {port for port, who in self._node_ports.items() if who == owner}
        requested: list[int] = []
        for i, port in enumerate(ports):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if not wants_node_ports:
                port.pop("nodePort", None)
                continue
            wanted = port.get("nodePort") or old_ports.get((port["protocol"], port["port"]))
            if wanted:
                field = f"spec.ports[{i}].nodePort"
                if wanted not in NODE_PORT_RANGE:
                    raise invalid(
                        "Service",
                        name,
                        field,
                        f"Invalid value: {wanted}: provided port is "
                        "not in the valid range. The range of valid ports is 30000-32767",
                    )
                if (wanted in self._node_ports and wanted not in mine) or wanted in requested:
                    raise invalid(
                        "Service",
                        name,
                        field,
                        f"Invalid value: {wanted}: provided port is already allocated",
                    )
                port["nodePort"] = wanted
                requested.append(wanted)
        for port in ports:
            if wants_node_ports and not port.get("nodePort"):
                port["nodePort"] = self._free_port(set(requested))
                requested.append(port["nodePort"])
        for released in mine - set(requested):
            self._node_ports.pop(released, None)
        for number in requested:
            self._node_ports[number] = owner
        if wants_node_ports:
            spec.setdefault("externalTrafficPolicy", "Cluster")
        obj.setdefault("status", {"loadBalancer": {}})

    def _free_port(self, also_taken: set[int]) -> int:
        free = [p for p in NODE_PORT_RANGE if p not in self._node_ports and p not in also_taken]
        if not free:
            raise StatusError(
                500, "InternalError", "range is full: no node ports are free in 30000-32767"
            )
        return self._rng.choice(free)


def _default_pod_spec(spec: Obj) -> None:
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        container.setdefault("imagePullPolicy", "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def _suffix(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
