"""The chute's NodePort Service (`docs/protocol.md#kubernetes-objects`): its ports and labels,
and the node ports Kubernetes gave it (which the Job's environment then carries). Pure, like
`kube_objects.py`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gepetto_core.kube_objects import (
    ATTESTATION_PORT,
    LABEL_CHUTE,
    LABEL_CHUTE_ID,
    LABEL_DEPLOYMENT_ID,
    LABEL_VERSION,
    LOGGING_PORT,
    PRIMARY_PORT,
    JobPort,
    JobSettings,
    LaunchParams,
    check_rows,
    has_attestation_port,
    service_name,
)
from gepetto_core.models.inventory import Chute, Deployment


def build_chute_service(
    chute: Chute, deployment: Deployment, settings: JobSettings, launch: LaunchParams
) -> dict[str, Any]:
    check_rows(chute, deployment)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(deployment.deployment_id),
            "namespace": settings.namespace,
            "labels": _service_labels(chute, deployment),
        },
        "spec": {
            "type": "NodePort",
            "externalTrafficPolicy": "Local",
            "selector": {LABEL_DEPLOYMENT_ID: deployment.deployment_id},
            "ports": service_ports(chute, launch.job_ports),
        },
    }


def node_ports_of(service: Mapping[str, Any]) -> dict[tuple[str, int], int]:
    """(protocol, port) → nodePort of a created Service (as returned by the API)."""
    result: dict[tuple[str, int], int] = {}
    for port in service.get("spec", {}).get("ports", []) or []:
        if port.get("nodePort"):
            result[(port.get("protocol", "TCP"), int(port["port"]))] = int(port["nodePort"])
    return result


def service_ports(chute: Chute, job_ports: Sequence[JobPort]) -> list[dict[str, Any]]:
    numbers = [PRIMARY_PORT, LOGGING_PORT]
    if has_attestation_port(chute):
        numbers.append(ATTESTATION_PORT)
    ports = [_service_port(n, "TCP", f"chute-{n}") for n in numbers]
    taken = {(p["protocol"], p["port"]) for p in ports}
    tcp_numbers = {p.port for p in job_ports if p.proto == "TCP"} | set(numbers)
    for extra in job_ports:
        if (extra.proto, extra.port) in taken:
            continue
        taken.add((extra.proto, extra.port))
        # A UDP twin of a TCP port needs its own name: Service port names must be unique.
        clash = extra.proto == "UDP" and extra.port in tcp_numbers
        name = f"chute-{extra.port}-udp" if clash else f"chute-{extra.port}"
        ports.append(_service_port(extra.port, extra.proto, name))
    return ports


def _service_port(number: int, proto: str, name: str) -> dict[str, Any]:
    return {"name": name, "port": number, "targetPort": number, "protocol": proto}


def _service_labels(chute: Chute, deployment: Deployment) -> dict[str, str]:
    return {
        LABEL_DEPLOYMENT_ID: deployment.deployment_id,
        LABEL_CHUTE: "true",
        LABEL_CHUTE_ID: chute.chute_id,
        LABEL_VERSION: deployment.version,
    }
