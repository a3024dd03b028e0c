"""Pure builders of the Kubernetes objects a chute deployment is made of
(`docs/protocol.md#kubernetes-objects`).

Inputs are inventory rows (`Chute`, `Server`, `Gpu`, `Deployment`) plus `JobSettings` (fixed per
process) and `LaunchParams` (per deployment); outputs are plain dicts in the Kubernetes JSON shape,
ready for any client. No I/O here, so every field can be checked by table-driven tests.

Upstream bugs fixed on purpose:
- the extra-port env loop skipped the first extra port when there was no attestation port
  (`ports[3:]`); here every extra port gets its `CHUTES_PORT_{PROTO}_{port}`;
- `--graval-seed None` was emitted for a server without a seed; the flag is now left out;
- a missing `nvidia.com/gpu.memory` label defaulted to 32 MiB and gave 0 GiB per GPU; here a
  missing label means "no GPU-memory cap";
- a UDP job port on the number of a TCP port got the same Service port name, which the API
  refuses; here it is `chute-{port}-udp`, and a job port repeating 8000/8001/8002 is not added
  a second time.

Node sizing (quantities, CPU and memory per GPU, free disk) is `node_capacity.py`; the Service is
`kube_service.py`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import SecretStr

from gepetto_core.errors import InvalidInputError
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server

# Name prefixes (chutes-miner `api/k8s/constants.py`).
JOB_PREFIX: Final = "chute"
SERVICE_PREFIX: Final = "chute-service"
LEGACY_SERVICE_PREFIX: Final = "chute-svc"
CODE_PREFIX: Final = "chute-code"

# Labels other components depend on (reconcile, cleanup CronJob, NetworkPolicies).
LABEL_DEPLOYMENT_ID: Final = "chutes/deployment-id"
LABEL_CHUTE: Final = "chutes/chute"
LABEL_CHUTE_ID: Final = "chutes/chute-id"
LABEL_VERSION: Final = "chutes/version"
LABEL_CONFIG_ID: Final = "chutes/config-id"
LABEL_JOB_ID: Final = "chutes/job-id"
LABEL_JOB: Final = "chutes/job"
LABEL_CODE: Final = "chutes/code"

PRIMARY_PORT: Final = 8000
LOGGING_PORT: Final = 8001
ATTESTATION_PORT: Final = 8002

# Version gates (chutes library version, `chutes.chutes_version`).
LAUNCH_CONFIG_MIN: Final = (0, 3, 0)
LOGGING_PROBE_MIN: Final = (0, 3, 3)
NO_CODE_VOLUME_MIN: Final = (0, 3, 61)
ATTESTATION_MIN: Final = (0, 6, 0)
# TEE VM version gate for the newer Hugging Face download settings.
XET_VM_MIN: Final = (1, 3, 1)


@dataclass(frozen=True)
class JobSettings:
    """Settings that are the same for every chute this process deploys."""

    miner_ss58: str
    namespace: str = "chutes"
    registry_proxy_port: int = 30500
    # MTLS_REGISTRY_MIN_VERSION: "" disables the direct registry (every pull goes via the proxy).
    mtls_registry_min_version: str = "1.4.0"
    mtls_registry_host: str = "registry.chutes.ai"
    runtime_class: str | None = "nvidia"
    shutdown_seconds: int = 180
    cache_max_age_days: int = 7
    cache_max_size_gb: int = 500
    cache_overrides: Mapping[str, int] = field(default_factory=dict)
    cache_cleaner_image: str = "parachutes/cache-cleaner:latest"
    default_disk_gb: int = 10

    def __post_init__(self) -> None:
        minimum = self.mtls_registry_min_version
        if minimum.strip() and parse_version(minimum) is None:
            raise InvalidInputError(
                f"MTLS_REGISTRY_MIN_VERSION must be a version such as 1.4.0 or empty, "
                f"not {minimum!r}"
            )


@dataclass(frozen=True)
class JobPort:
    """An extra port a validator job asks for; `proto` is TCP or UDP."""

    port: int
    proto: str = "TCP"

    @property
    def env_name(self) -> str:
        return f"CHUTES_PORT_{self.proto}_{self.port}"


@dataclass(frozen=True)
class LaunchParams:
    """What differs per deployment besides the inventory rows.

    `launch_token` is the validator's launch JWT (a secret: kept as SecretStr so it never shows
    in a repr or log line). `vm_version` is the TEE VM version the validator reports for the
    server, when known."""

    launch_token: SecretStr | None = None
    job_ports: tuple[JobPort, ...] = ()
    disk_gb: int | None = None
    vm_version: str | None = None


# --------------------------------------------------------------------------- names


def job_name(deployment_id: str) -> str:
    return f"{JOB_PREFIX}-{deployment_id}"


def service_name(deployment_id: str) -> str:
    return f"{SERVICE_PREFIX}-{deployment_id}"


def legacy_service_name(deployment_id: str) -> str:
    return f"{LEGACY_SERVICE_PREFIX}-{deployment_id}"


def code_configmap_name(chute_id: str, version: str) -> str:
    return f"{CODE_PREFIX}-{uuid.uuid5(uuid.NAMESPACE_OID, f'{chute_id}::{version}')}"


# --------------------------------------------------------------------------- versions


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """`"0.3.61"` → (0, 3, 61); `"1.4.0rc1"` → (1, 4, 0); None for text without a version."""
    if not text:
        return None
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)", text)
    if match is None:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def version_at_least(text: str | None, minimum: tuple[int, ...]) -> bool:
    """Unknown versions count as old: the legacy behaviour is the safe one."""
    parsed = parse_version(text)
    if parsed is None:
        return False
    width = max(len(parsed), len(minimum))
    return parsed + (0,) * (width - len(parsed)) >= minimum + (0,) * (width - len(minimum))


def uses_launch_config(chute: Chute) -> bool:
    return version_at_least(chute.chutes_version, LAUNCH_CONFIG_MIN)


def has_attestation_port(chute: Chute) -> bool:
    return chute.tee and version_at_least(chute.chutes_version, ATTESTATION_MIN)


def needs_code_volume(chute: Chute) -> bool:
    return not chute.tee and not version_at_least(chute.chutes_version, NO_CODE_VOLUME_MIN)


# --------------------------------------------------------------------------- ports


def normalize_job_ports(raw_ports: Iterable[Mapping[str, Any]]) -> tuple[JobPort, ...]:
    """Extra ports from the validator's `jobs[].ports[] {port, proto}`, deduplicated by
    proto:port in first-seen order; tcp/http map to TCP, anything else to UDP."""
    seen: dict[tuple[str, int], JobPort] = {}
    for raw in raw_ports:
        try:
            port = int(raw["port"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInputError(f"job port without a valid number: {raw!r}") from e
        proto = "TCP" if str(raw.get("proto", "tcp")).lower() in ("tcp", "http") else "UDP"
        seen.setdefault((proto, port), JobPort(port=port, proto=proto))
    return tuple(seen.values())


# --------------------------------------------------------------------------- labels


def chute_labels(chute: Chute, deployment: Deployment) -> dict[str, str]:
    """The exact label set of the Job and its pod template."""
    labels = {
        LABEL_DEPLOYMENT_ID: deployment.deployment_id,
        LABEL_CHUTE: "true",
        LABEL_CHUTE_ID: chute.chute_id,
        LABEL_VERSION: deployment.version,
    }
    if deployment.config_id:
        labels[LABEL_CONFIG_ID] = deployment.config_id
    if deployment.job_id:
        labels[LABEL_JOB_ID] = deployment.job_id
        labels[LABEL_JOB] = "true"
    return labels


# --------------------------------------------------------------------------- builders


def build_code_configmap(chute: Chute, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": code_configmap_name(chute.chute_id, chute.version),
            "namespace": namespace,
            "labels": {
                LABEL_CHUTE_ID: chute.chute_id,
                LABEL_VERSION: chute.version,
                LABEL_CODE: "true",
            },
        },
        "data": {chute.filename: chute.code},
    }


def gpu_device_name(gpu: Gpu) -> str:
    """`GPU-` + the canonical lower-case dashed UUID of the stored id, whatever its case or
    dashes (the form NVIDIA_VISIBLE_DEVICES wants). A stored id that already carries the
    `GPU-` prefix (as nvidia-smi prints it) is accepted too. An id that is not a UUID is an
    error: a device name that matches no GPU would silently start the chute on none."""
    raw = gpu.gpu_id
    if raw[:4].upper() == "GPU-":
        raw = raw[4:]
    try:
        return f"GPU-{uuid.UUID(raw)}"
    except ValueError:
        raise InvalidInputError(
            f"GPU id {gpu.gpu_id!r} is not a UUID, so no GPU-<uuid> device name can be made "
            "for NVIDIA_VISIBLE_DEVICES"
        ) from None


def registry_ref(server: Server, settings: JobSettings, vm_version: str | None) -> str:
    """Where the chute image is pulled from: the validator's registry directly (mTLS) when the
    server's TEE VM version is at least `MTLS_REGISTRY_MIN_VERSION`, else the node-local
    registry proxy. An empty minimum turns the direct registry off; an unknown VM version
    counts as too old."""
    minimum = parse_version(settings.mtls_registry_min_version)
    if minimum is not None and version_at_least(vm_version, minimum):
        return settings.mtls_registry_host
    return f"{server.validator.lower()}.localregistry.chutes.ai:{settings.registry_proxy_port}"


def build_chute_job(
    chute: Chute,
    server: Server,
    gpus: Sequence[Gpu],
    deployment: Deployment,
    settings: JobSettings,
    launch: LaunchParams,
    node_ports: Mapping[tuple[str, int], int],
) -> dict[str, Any]:
    """The Job `chute-{deployment_id}`; `node_ports` come from the created Service."""
    check_rows(chute, deployment)
    _check_gpus(chute, server, gpus)
    attestation = has_attestation_port(chute)
    required = [PRIMARY_PORT, LOGGING_PORT] + ([ATTESTATION_PORT] if attestation else [])
    _check_node_ports(required, launch.job_ports, node_ports)
    disk_gb = launch.disk_gb if launch.disk_gb is not None else settings.default_disk_gb
    devices = ",".join(gpu_device_name(g) for g in gpus)
    env = _chute_env(chute, server, settings, launch, node_ports, devices, attestation)
    container_ports = [{"containerPort": p, "protocol": "TCP"} for p in required]
    # A job port that repeats 8000/8001/8002 is already there (the Service skips it too).
    container_ports += [
        {"containerPort": p.port, "protocol": p.proto}
        for p in launch.job_ports
        if not (p.proto == "TCP" and p.port in required)
    ]
    resources = {
        "cpu": str(server.cpu_per_gpu * chute.gpu_count),
        "memory": f"{server.memory_per_gpu * chute.gpu_count}Gi",
        "ephemeral-storage": f"{disk_gb}Gi",
    }
    mounts, volumes = _chute_volumes(chute, disk_gb)
    container = {
        "name": "chute",
        "image": f"{registry_ref(server, settings, launch.vm_version)}/{chute.image}",
        "imagePullPolicy": "Always",
        "command": _chute_command(chute, server, settings, launch),
        "env": env,
        "ports": container_ports,
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "readinessProbe": _readiness_probe(chute),
        "securityContext": {"capabilities": {"add": ["IPC_LOCK"]}},
        "volumeMounts": mounts,
    }
    pod_spec: dict[str, Any] = {
        "nodeName": server.name,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": settings.shutdown_seconds,
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
        "initContainers": [_cache_init_container(chute, server, settings, devices)],
        "containers": [container],
        "volumes": volumes,
    }
    if settings.runtime_class:
        pod_spec["runtimeClassName"] = settings.runtime_class
    return _job(
        job_name(deployment.deployment_id),
        settings.namespace,
        chute_labels(chute, deployment),
        pod_spec,
    )


def _check_node_ports(
    required: Sequence[int], job_ports: Sequence[JobPort], node_ports: Mapping[tuple[str, int], int]
) -> None:
    missing = [p for p in required if ("TCP", p) not in node_ports]
    missing += [p.port for p in job_ports if (p.proto, p.port) not in node_ports]
    if missing:
        raise InvalidInputError(f"service has no node port for port(s) {missing}")


def _readiness_probe(chute: Chute) -> dict[str, Any]:
    """`/_alive` on the logging port (chutes >= 0.3.3), else on the primary port."""
    probe_port = LOGGING_PORT if version_at_least(chute.chutes_version, LOGGING_PROBE_MIN) else 8000
    return {
        "exec": {"command": ["curl", "-f", f"http://127.0.0.1:{probe_port}/_alive"]},
        "initialDelaySeconds": 15,
        "periodSeconds": 15,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 60,
    }


def _chute_volumes(chute: Chute, disk_gb: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The chute container's mounts and the pod's volumes (the code ConfigMap first, when the
    chute's library version still reads its code from one)."""
    mounts: list[dict[str, Any]] = [
        {"name": "cache", "mountPath": "/cache"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "shm", "mountPath": "/dev/shm"},
    ]
    volumes: list[dict[str, Any]] = [
        {
            "name": "cache",
            "hostPath": {"path": f"/var/snap/cache/{chute.chute_id}", "type": "DirectoryOrCreate"},
        },
        {"name": "raw-cache", "hostPath": {"path": "/var/snap/cache", "type": "DirectoryOrCreate"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": f"{disk_gb}Gi"}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
    ]
    if needs_code_volume(chute):
        mounts.insert(
            0,
            {"name": "code", "mountPath": f"/app/{chute.filename}", "subPath": chute.filename},
        )
        volumes.insert(
            0,
            {
                "name": "code",
                "configMap": {
                    "name": code_configmap_name(chute.chute_id, chute.version),
                    "items": [{"key": chute.filename, "path": chute.filename}],
                },
            },
        )
    return mounts, volumes


def _cache_init_container(
    chute: Chute, server: Server, settings: JobSettings, devices: str
) -> dict[str, Any]:
    """Cleans the node's model cache before the chute starts (keeping this chute's files)."""
    cache_size = settings.cache_overrides.get(server.name, settings.cache_max_size_gb)
    return {
        "name": "cache-init",
        "image": settings.cache_cleaner_image,
        "imagePullPolicy": "Always",
        "env": [
            {"name": "CLEANUP_EXCLUDE", "value": chute.chute_id},
            {"name": "HF_HOME", "value": "/cache"},
            {"name": "CIVITAI_HOME", "value": "/cache/civitai"},
            {"name": "CACHE_MAX_AGE_DAYS", "value": str(settings.cache_max_age_days)},
            {"name": "CACHE_MAX_SIZE_GB", "value": str(cache_size)},
            {"name": "NVIDIA_VISIBLE_DEVICES", "value": devices},
        ],
        # Root user and root group: the pod's group 1000 would otherwise be inherited, and the
        # cache files it creates would belong to another group than the official miner's.
        "securityContext": {"runAsUser": 0, "runAsGroup": 0},
        "volumeMounts": [{"name": "raw-cache", "mountPath": "/cache"}],
    }


def _job(
    name: str, namespace: str, labels: Mapping[str, str], pod_spec: dict[str, Any]
) -> dict[str, Any]:
    """The Job around the pod: one run, no retries, kept 5 minutes after it ends."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 300,
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/path": "/_metrics",
                        "prometheus.io/port": "8000",
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def _chute_command(
    chute: Chute, server: Server, settings: JobSettings, launch: LaunchParams
) -> list[str]:
    command = ["chutes", "run", chute.ref_str, "--port", str(PRIMARY_PORT)]
    # The GraVal seed is only for the legacy (token-less) launch path.
    if launch.launch_token is None and server.seed is not None:
        command += ["--graval-seed", str(server.seed)]
    command += ["--miner-ss58", settings.miner_ss58, "--validator-ss58", server.validator]
    return command


def _chute_env(
    chute: Chute,
    server: Server,
    settings: JobSettings,
    launch: LaunchParams,
    node_ports: Mapping[tuple[str, int], int],
    devices: str,
    attestation: bool,
) -> list[dict[str, str]]:
    env = {
        "NCCL_P2P_DISABLE": "1",
        "NCCL_IB_DISABLE": "1",
        "NCCL_SHM_DISABLE": "0",
        "NCCL_NET_GDR_LEVEL": "0",
        "NVIDIA_VISIBLE_DEVICES": devices,
        "CHUTES_NVIDIA_DEVICES": devices,
        "CHUTES_PORT_PRIMARY": str(node_ports[("TCP", PRIMARY_PORT)]),
        "CHUTES_PORT_LOGGING": str(node_ports[("TCP", LOGGING_PORT)]),
        "CHUTES_EXECUTION_CONTEXT": "REMOTE",
        "VLLM_DISABLE_TELEMETRY": "1",
        "NCCL_DEBUG": "INFO",
        "NCCL_SOCKET_IFNAME": "lo",
        "NCCL_SOCKET_FAMILY": "AF_INET",
        "HF_HOME": "/cache",
        "CIVITAI_HOME": "/cache/civitai",
    }
    env.update(hf_download_env(chute, launch.vm_version))
    if attestation:
        env["CHUTES_PORT_ATTESTATION"] = str(node_ports[("TCP", ATTESTATION_PORT)])
    for extra in launch.job_ports:
        env[extra.env_name] = str(node_ports[(extra.proto, extra.port)])
    if launch.launch_token is not None:
        env["CHUTES_LAUNCH_JWT"] = launch.launch_token.get_secret_value()
        if server.ip_address:
            env["CHUTES_EXTERNAL_HOST"] = server.ip_address
    return [{"name": k, "value": v} for k, v in env.items()]


def hf_download_env(chute: Chute, vm_version: str | None) -> dict[str, str]:
    """Hugging Face download settings: only TEE chutes get any. On a VM from 1.3.1 on, xet
    with fixed concurrency; on an older VM or one of unknown version, xet off and hf_transfer
    on. A non-TEE chute keeps the library defaults (none of the four variables)."""
    if not chute.tee:
        return {}
    if version_at_least(vm_version, XET_VM_MIN):
        return {"HF_XET_FIXED_DOWNLOAD_CONCURRENCY": "16", "TOKIO_WORKER_THREADS": "8"}
    return {"HF_HUB_DISABLE_XET": "1", "HF_HUB_ENABLE_HF_TRANSFER": "1"}


def check_rows(chute: Chute, deployment: Deployment) -> None:
    if deployment.chute_id != chute.chute_id:
        raise InvalidInputError(
            f"deployment {deployment.deployment_id} is for chute {deployment.chute_id}, "
            f"not {chute.chute_id}"
        )


def _check_gpus(chute: Chute, server: Server, gpus: Sequence[Gpu]) -> None:
    if len(gpus) != chute.gpu_count:
        raise InvalidInputError(f"chute needs {chute.gpu_count} GPU(s), {len(gpus)} given")
    foreign = [g.gpu_id for g in gpus if g.server_id != server.server_id]
    if foreign:
        raise InvalidInputError(f"GPU(s) {foreign} are not on server {server.name}")
