"""Object-shape tests: for fixed inventory rows the Service and Job carry exactly the documented
names, labels, env, ports, probes, resources and volumes (`docs/protocol.md#kubernetes-objects`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from gepetto_core import kube_objects as ko
from gepetto_core import kube_service
from gepetto_core.errors import InvalidInputError
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server

MINER = "5MinerHotkeyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
VALIDATOR = "5Dt7HZ7Zpw4DppPxFM7Ke3Cm7sDAWhsZXmM5ZAmE7dSVJbcQ"
GPU_HEX = ["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"]
GPU_DEVICES = "GPU-01234567-89ab-cdef-0123-456789abcdef,GPU-fedcba98-7654-3210-fedc-ba9876543210"
SETTINGS = ko.JobSettings(
    miner_ss58=MINER,
    namespace="chutes",
    runtime_class="nvidia",
    shutdown_seconds=180,
    cache_max_age_days=7,
    cache_max_size_gb=500,
    cache_overrides={"gpu-node-1": 900},
)


def make_server(seed: int | None = None) -> Server:
    return Server(
        server_id="node-uid-1",
        validator=VALIDATOR,
        name="gpu-node-1",
        ip_address="203.0.113.7",
        gpu_count=8,
        cpu_per_gpu=4,
        memory_per_gpu=60,
        hourly_cost=1.5,
        seed=seed,
    )


def make_gpus() -> list[Gpu]:
    return [Gpu(gpu_id=g, server_id="node-uid-1", model_short_ref="h100") for g in GPU_HEX]


def make_chute(chutes_version: str, tee: bool) -> Chute:
    return Chute(
        chute_id="chute-abc",
        validator=VALIDATOR,
        image="alice/llama:0.1-2",
        code="print('hi')",
        filename="chute_file.py",
        ref_str="chute_file:chute",
        version="v-hash-1",
        gpu_count=2,
        chutes_version=chutes_version,
        tee=tee,
    )


def make_deployment(job_id: str | None = None, config_id: str | None = None) -> Deployment:
    return Deployment(
        deployment_id="dep-1",
        validator=VALIDATOR,
        chute_id="chute-abc",
        server_id="node-uid-1",
        version="v-hash-1",
        job_id=job_id,
        config_id=config_id,
    )


BASE_ENV = {
    "NCCL_P2P_DISABLE": "1",
    "NCCL_IB_DISABLE": "1",
    "NCCL_SHM_DISABLE": "0",
    "NCCL_NET_GDR_LEVEL": "0",
    "NVIDIA_VISIBLE_DEVICES": GPU_DEVICES,
    "CHUTES_NVIDIA_DEVICES": GPU_DEVICES,
    "CHUTES_PORT_PRIMARY": "30100",
    "CHUTES_PORT_LOGGING": "30101",
    "CHUTES_EXECUTION_CONTEXT": "REMOTE",
    "VLLM_DISABLE_TELEMETRY": "1",
    "NCCL_DEBUG": "INFO",
    "NCCL_SOCKET_IFNAME": "lo",
    "NCCL_SOCKET_FAMILY": "AF_INET",
    "HF_HOME": "/cache",
    "CIVITAI_HOME": "/cache/civitai",
}
OLD_HF = {"HF_HUB_DISABLE_XET": "1", "HF_HUB_ENABLE_HF_TRANSFER": "1"}
NEW_HF = {"HF_XET_FIXED_DOWNLOAD_CONCURRENCY": "16", "TOKIO_WORKER_THREADS": "8"}
LOCAL_REGISTRY = f"{VALIDATOR.lower()}.localregistry.chutes.ai:30500"


@dataclass
class Case:
    id: str
    chute: Chute
    deployment: Deployment
    launch: ko.LaunchParams
    server: Server
    node_ports: dict[tuple[str, int], int]
    service_ports: list[tuple[str, int, str]]  # (name, port, proto)
    labels: dict[str, str]
    env: dict[str, str]
    command: list[str]
    image: str
    probe_port: int
    code_volume: bool
    container_ports: list[tuple[int, str]]
    disk_gb: int
    extra: dict[str, Any] = field(default_factory=dict)


COMMON_LABELS = {
    "chutes/deployment-id": "dep-1",
    "chutes/chute": "true",
    "chutes/chute-id": "chute-abc",
    "chutes/version": "v-hash-1",
}
TOKEN = SecretStr("jwt.secret.token")

CASES = [
    Case(
        id="tee-0.6",
        chute=make_chute("0.6.1", tee=True),
        deployment=make_deployment(config_id="cfg-9"),
        launch=ko.LaunchParams(launch_token=TOKEN, vm_version="1.4.2"),
        server=make_server(seed=42),
        node_ports={("TCP", 8000): 30100, ("TCP", 8001): 30101, ("TCP", 8002): 30102},
        service_ports=[
            ("chute-8000", 8000, "TCP"),
            ("chute-8001", 8001, "TCP"),
            ("chute-8002", 8002, "TCP"),
        ],
        labels=COMMON_LABELS | {"chutes/config-id": "cfg-9"},
        env=BASE_ENV
        | NEW_HF
        | {
            "CHUTES_PORT_ATTESTATION": "30102",
            "CHUTES_LAUNCH_JWT": "jwt.secret.token",
            "CHUTES_EXTERNAL_HOST": "203.0.113.7",
        },
        # A launch token replaces the GraVal seed even when the server has one.
        command=[
            "chutes",
            "run",
            "chute_file:chute",
            "--port",
            "8000",
            "--miner-ss58",
            MINER,
            "--validator-ss58",
            VALIDATOR,
        ],
        image="registry.chutes.ai/alice/llama:0.1-2",
        probe_port=8001,
        code_volume=False,
        container_ports=[(8000, "TCP"), (8001, "TCP"), (8002, "TCP")],
        disk_gb=10,
    ),
    Case(
        id="legacy-0.2",
        chute=make_chute("0.2.50", tee=False),
        deployment=make_deployment(),
        launch=ko.LaunchParams(),
        server=make_server(seed=42),
        node_ports={("TCP", 8000): 30100, ("TCP", 8001): 30101},
        service_ports=[("chute-8000", 8000, "TCP"), ("chute-8001", 8001, "TCP")],
        labels=COMMON_LABELS,
        # A non-TEE chute gets none of the Hugging Face download variables.
        env=BASE_ENV,
        command=[
            "chutes",
            "run",
            "chute_file:chute",
            "--port",
            "8000",
            "--graval-seed",
            "42",
            "--miner-ss58",
            MINER,
            "--validator-ss58",
            VALIDATOR,
        ],
        image=f"{LOCAL_REGISTRY}/alice/llama:0.1-2",
        probe_port=8000,
        code_volume=True,
        container_ports=[(8000, "TCP"), (8001, "TCP")],
        disk_gb=10,
    ),
    Case(
        id="job-extra-ports",
        chute=make_chute("0.3.61", tee=False),
        deployment=make_deployment(job_id="job-7", config_id="cfg-7"),
        launch=ko.LaunchParams(
            launch_token=TOKEN,
            job_ports=ko.normalize_job_ports(
                [
                    {"port": 9000, "proto": "http"},
                    {"port": 9001, "proto": "udp"},
                    {"port": 9000, "proto": "tcp"},  # duplicate of the first
                    {"port": 9000, "proto": "udp"},
                ]
            ),
            disk_gb=200,
        ),
        server=make_server(seed=None),
        node_ports={
            ("TCP", 8000): 30100,
            ("TCP", 8001): 30101,
            ("TCP", 9000): 30200,
            ("UDP", 9001): 30201,
            ("UDP", 9000): 30202,
        },
        service_ports=[
            ("chute-8000", 8000, "TCP"),
            ("chute-8001", 8001, "TCP"),
            ("chute-9000", 9000, "TCP"),
            ("chute-9001", 9001, "UDP"),
            ("chute-9000-udp", 9000, "UDP"),
        ],
        labels=COMMON_LABELS
        | {"chutes/config-id": "cfg-7", "chutes/job-id": "job-7", "chutes/job": "true"},
        # Every extra port has its env (upstream skipped the first one: ports[3:]).
        env=BASE_ENV
        | {
            "CHUTES_PORT_TCP_9000": "30200",
            "CHUTES_PORT_UDP_9001": "30201",
            "CHUTES_PORT_UDP_9000": "30202",
            "CHUTES_LAUNCH_JWT": "jwt.secret.token",
            "CHUTES_EXTERNAL_HOST": "203.0.113.7",
        },
        command=[
            "chutes",
            "run",
            "chute_file:chute",
            "--port",
            "8000",
            "--miner-ss58",
            MINER,
            "--validator-ss58",
            VALIDATOR,
        ],
        image=f"{LOCAL_REGISTRY}/alice/llama:0.1-2",
        probe_port=8001,
        code_volume=False,
        container_ports=[(8000, "TCP"), (8001, "TCP"), (9000, "TCP"), (9001, "UDP"), (9000, "UDP")],
        disk_gb=200,
    ),
    Case(
        id="tee-unknown-vm",
        chute=make_chute("0.5.2", tee=True),
        deployment=make_deployment(config_id="cfg-3"),
        launch=ko.LaunchParams(launch_token=TOKEN, vm_version=None),
        server=make_server(seed=None),
        node_ports={("TCP", 8000): 30100, ("TCP", 8001): 30101},
        # No attestation port below chutes 0.6.0, even for TEE.
        service_ports=[("chute-8000", 8000, "TCP"), ("chute-8001", 8001, "TCP")],
        labels=COMMON_LABELS | {"chutes/config-id": "cfg-3"},
        # A TEE chute on a VM of unknown version: xet off, hf_transfer on.
        env=BASE_ENV
        | OLD_HF
        | {"CHUTES_LAUNCH_JWT": "jwt.secret.token", "CHUTES_EXTERNAL_HOST": "203.0.113.7"},
        command=[
            "chutes",
            "run",
            "chute_file:chute",
            "--port",
            "8000",
            "--miner-ss58",
            MINER,
            "--validator-ss58",
            VALIDATOR,
        ],
        # Unknown VM version: through the local registry proxy.
        image=f"{LOCAL_REGISTRY}/alice/llama:0.1-2",
        probe_port=8001,
        code_volume=False,  # TEE chutes never mount the code ConfigMap
        container_ports=[(8000, "TCP"), (8001, "TCP")],
        disk_gb=10,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_service_shape(case: Case) -> None:
    svc = kube_service.build_chute_service(case.chute, case.deployment, SETTINGS, case.launch)
    assert svc["apiVersion"] == "v1" and svc["kind"] == "Service"
    assert svc["metadata"] == {
        "name": "chute-service-dep-1",
        "namespace": "chutes",
        "labels": COMMON_LABELS,
    }
    spec = svc["spec"]
    assert spec["type"] == "NodePort"
    assert spec["externalTrafficPolicy"] == "Local"
    assert spec["selector"] == {"chutes/deployment-id": "dep-1"}
    assert [(p["name"], p["port"], p["protocol"]) for p in spec["ports"]] == case.service_ports
    assert all(p["targetPort"] == p["port"] for p in spec["ports"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_job_shape(case: Case) -> None:
    job = ko.build_chute_job(
        case.chute,
        case.server,
        make_gpus(),
        case.deployment,
        SETTINGS,
        case.launch,
        case.node_ports,
    )
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"] == {"name": "chute-dep-1", "namespace": "chutes", "labels": case.labels}
    spec = job["spec"]
    assert (spec["parallelism"], spec["completions"], spec["backoffLimit"]) == (1, 1, 0)
    assert spec["ttlSecondsAfterFinished"] == 300
    template = spec["template"]
    assert template["metadata"]["labels"] == case.labels
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/path": "/_metrics",
        "prometheus.io/port": "8000",
    }
    pod = template["spec"]
    assert pod["nodeName"] == "gpu-node-1"
    assert pod["restartPolicy"] == "Never"
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["terminationGracePeriodSeconds"] == 180
    assert pod["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000}
    assert "affinity" not in pod and "nodeSelector" not in pod and "tolerations" not in pod

    (container,) = pod["containers"]
    assert container["name"] == "chute"
    assert container["image"] == case.image
    assert container["imagePullPolicy"] == "Always"
    assert container["command"] == case.command
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == case.env
    assert len(container["env"]) == len(env)  # no duplicates
    assert [(p["containerPort"], p["protocol"]) for p in container["ports"]] == (
        case.container_ports
    )
    expected_resources = {"cpu": "8", "memory": "120Gi", "ephemeral-storage": f"{case.disk_gb}Gi"}
    assert container["resources"] == {
        "requests": expected_resources,
        "limits": expected_resources,
    }
    assert "nvidia.com/gpu" not in str(container["resources"])
    assert container["readinessProbe"] == {
        "exec": {"command": ["curl", "-f", f"http://127.0.0.1:{case.probe_port}/_alive"]},
        "initialDelaySeconds": 15,
        "periodSeconds": 15,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 60,
    }
    assert "livenessProbe" not in container
    assert container["securityContext"] == {"capabilities": {"add": ["IPC_LOCK"]}}

    configmap = f"chute-code-{uuid.uuid5(uuid.NAMESPACE_OID, 'chute-abc::v-hash-1')}"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    expected_volumes = {
        "cache": {
            "name": "cache",
            "hostPath": {"path": "/var/snap/cache/chute-abc", "type": "DirectoryOrCreate"},
        },
        "raw-cache": {
            "name": "raw-cache",
            "hostPath": {"path": "/var/snap/cache", "type": "DirectoryOrCreate"},
        },
        "tmp": {"name": "tmp", "emptyDir": {"sizeLimit": f"{case.disk_gb}Gi"}},
        "shm": {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
    }
    expected_mounts = {
        "cache": {"name": "cache", "mountPath": "/cache"},
        "tmp": {"name": "tmp", "mountPath": "/tmp"},
        "shm": {"name": "shm", "mountPath": "/dev/shm"},
    }
    if case.code_volume:
        expected_volumes["code"] = {
            "name": "code",
            "configMap": {
                "name": configmap,
                "items": [{"key": "chute_file.py", "path": "chute_file.py"}],
            },
        }
        expected_mounts["code"] = {
            "name": "code",
            "mountPath": "/app/chute_file.py",
            "subPath": "chute_file.py",
        }
    assert volumes == expected_volumes
    assert mounts == expected_mounts

    (init,) = pod["initContainers"]
    assert init["name"] == "cache-init"
    assert init["image"] == "parachutes/cache-cleaner:latest"
    assert init["securityContext"] == {"runAsUser": 0, "runAsGroup": 0}
    assert {e["name"]: e["value"] for e in init["env"]} == {
        "CLEANUP_EXCLUDE": "chute-abc",
        "HF_HOME": "/cache",
        "CIVITAI_HOME": "/cache/civitai",
        "CACHE_MAX_AGE_DAYS": "7",
        "CACHE_MAX_SIZE_GB": "900",  # the per-node override
        "NVIDIA_VISIBLE_DEVICES": GPU_DEVICES,
    }
    assert init["volumeMounts"] == [{"name": "raw-cache", "mountPath": "/cache"}]


def test_configmap_shape() -> None:
    chute = make_chute("0.2.50", tee=False)
    cm = ko.build_code_configmap(chute, "chutes")
    assert cm["metadata"] == {
        "name": f"chute-code-{uuid.uuid5(uuid.NAMESPACE_OID, 'chute-abc::v-hash-1')}",
        "namespace": "chutes",
        "labels": {
            "chutes/chute-id": "chute-abc",
            "chutes/version": "v-hash-1",
            "chutes/code": "true",
        },
    }
    assert cm["data"] == {"chute_file.py": "print('hi')"}


def test_launch_token_stays_out_of_reprs() -> None:
    launch = ko.LaunchParams(launch_token=SecretStr("jwt.secret.token"))
    assert "jwt.secret.token" not in repr(launch)
    assert "jwt.secret.token" not in str(launch)


def test_job_refuses_missing_node_ports_and_wrong_gpus() -> None:
    case = CASES[2]
    ports = dict(case.node_ports)
    del ports[("UDP", 9001)]
    with pytest.raises(InvalidInputError, match="9001"):
        ko.build_chute_job(
            case.chute, case.server, make_gpus(), case.deployment, SETTINGS, case.launch, ports
        )
    with pytest.raises(InvalidInputError, match="needs 2 GPU"):
        ko.build_chute_job(
            case.chute,
            case.server,
            make_gpus()[:1],
            case.deployment,
            SETTINGS,
            case.launch,
            case.node_ports,
        )
    foreign = [g.model_copy(update={"server_id": "other"}) for g in make_gpus()]
    with pytest.raises(InvalidInputError, match="not on server"):
        ko.build_chute_job(
            case.chute,
            case.server,
            foreign,
            case.deployment,
            SETTINGS,
            case.launch,
            case.node_ports,
        )


@pytest.mark.parametrize(
    ("text", "minimum", "expected"),
    [
        ("0.3.61", (0, 3, 61), True),
        ("0.3.60", (0, 3, 61), False),
        ("0.10.0", (0, 6, 0), True),
        ("1.4", (1, 4, 0), True),
        ("1.4.0rc1", (1, 4, 0), True),
        (None, (0, 3, 0), False),
        ("a1b2c3", (0, 3, 0), False),
    ],
)
def test_version_gates(text: str | None, minimum: tuple[int, ...], expected: bool) -> None:
    assert ko.version_at_least(text, minimum) is expected


# --------------------------------------------------------------------------- official parity
# Each test below states what the official chutes-miner builder writes for the same inputs.


def _job(
    chute: Chute,
    launch: ko.LaunchParams,
    settings: ko.JobSettings = SETTINGS,
    gpus: list[Gpu] | None = None,
) -> dict[str, Any]:
    ports = {("TCP", 8000): 30100, ("TCP", 8001): 30101, ("TCP", 8002): 30102}
    return ko.build_chute_job(
        chute,
        make_server(),
        make_gpus() if gpus is None else gpus,
        make_deployment(),
        settings,
        launch,
        ports,
    )


def _env(job: dict[str, Any], container: str = "containers") -> dict[str, str]:
    (c,) = job["spec"]["template"]["spec"][container]
    return {e["name"]: e["value"] for e in c["env"]}


HF_NAMES = {
    "HF_HUB_DISABLE_XET",
    "HF_HUB_ENABLE_HF_TRANSFER",
    "HF_XET_FIXED_DOWNLOAD_CONCURRENCY",
    "TOKIO_WORKER_THREADS",
}


@pytest.mark.parametrize(
    ("tee", "vm_version", "expected"),
    [
        (True, "1.3.1", NEW_HF),
        (True, "1.4.2", NEW_HF),
        (True, "1.3.0", OLD_HF),
        (True, None, OLD_HF),
        (True, "not-a-version", OLD_HF),
        (False, None, {}),
        (False, "1.3.0", {}),
        (False, "1.4.2", {}),
    ],
)
def test_official_builder_sets_hf_download_env_only_for_tee_chutes(
    tee: bool, vm_version: str | None, expected: dict[str, str]
) -> None:
    """The official builder adds the HF/TOKIO variables only inside `if chute.tee:` — from VM
    1.3.1 on xet with fixed concurrency, below it (or unknown) xet off and hf_transfer on. A
    non-TEE chute gets none of the four, so its weights download with the library defaults."""
    env = _env(_job(make_chute("0.6.1", tee=tee), ko.LaunchParams(vm_version=vm_version)))
    assert {k: v for k, v in env.items() if k in HF_NAMES} == expected


@pytest.mark.parametrize(
    ("minimum", "vm_version", "tee", "direct"),
    [
        ("1.4.0", "1.4.0", True, True),  # the default: ≥ 1.4.0 pulls directly
        ("1.4.0", "1.5", True, True),
        ("1.4.0", "1.3.9", True, False),
        ("1.4.0", None, True, False),  # unknown VM version: via the proxy
        ("1.4.0", "1.4.2", False, True),  # the gate is the server's VM, not the chute's TEE flag
        ("1.5.0", "1.4.2", True, False),  # a miner's higher minimum keeps 1.4.x on the proxy
        ("1.5.0", "1.5.0", True, True),
        ("1.2", "1.3.0", True, True),
        ("", "1.4.2", True, False),  # empty disables the direct registry
        ("", "99.0", True, False),
        ("  ", "99.0", True, False),
    ],
)
def test_official_builder_reads_mtls_registry_min_version(
    minimum: str, vm_version: str | None, tee: bool, direct: bool
) -> None:
    """The official builder pulls from `registry.chutes.ai` when the server's TEE VM version is
    at least the miner's MTLS_REGISTRY_MIN_VERSION (default 1.4.0); with an empty setting, or an
    older or unknown VM, from `{validator}.localregistry.chutes.ai:{REGISTRY_PROXY_PORT}`."""
    settings = ko.JobSettings(miner_ss58=MINER, mtls_registry_min_version=minimum)
    job = _job(make_chute("0.6.1", tee=tee), ko.LaunchParams(vm_version=vm_version), settings)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    registry = "registry.chutes.ai" if direct else LOCAL_REGISTRY
    assert container["image"] == f"{registry}/alice/llama:0.1-2"


def test_registry_proxy_port_and_validator_case_in_the_proxy_reference() -> None:
    """The official proxy reference is the lower-cased validator hotkey and REGISTRY_PROXY_PORT."""
    settings = ko.JobSettings(miner_ss58=MINER, registry_proxy_port=31999)
    assert ko.registry_ref(make_server(), settings, None) == (
        f"{VALIDATOR.lower()}.localregistry.chutes.ai:31999"
    )


def test_an_unreadable_mtls_registry_min_version_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="MTLS_REGISTRY_MIN_VERSION"):
        ko.JobSettings(miner_ss58=MINER, mtls_registry_min_version="latest")


def test_official_builder_runs_cache_init_as_root_user_and_group() -> None:
    """The official cache-init container sets runAsUser 0 and runAsGroup 0; without the group
    it would inherit the pod's group 1000 and write cache files with another group."""
    pod = _job(make_chute("0.6.1", tee=False), ko.LaunchParams())["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000}
    (init,) = pod["initContainers"]
    assert init["securityContext"]["runAsUser"] == 0
    assert init["securityContext"]["runAsGroup"] == 0


CANONICAL = "GPU-01234567-89ab-cdef-0123-456789abcdef"


@pytest.mark.parametrize(
    "stored",
    [
        "0123456789abcdef0123456789abcdef",
        "0123456789ABCDEF0123456789ABCDEF",
        "01234567-89ab-cdef-0123-456789abcdef",
        "01234567-89AB-CDEF-0123-456789ABCDEF",
        "0123-456789abcdef-0123456789ab-cdef",  # dashes in odd places
        "GPU-01234567-89AB-CDEF-0123-456789ABCDEF",  # as nvidia-smi prints it
        "GPU-0123456789abcdef0123456789abcdef",
    ],
)
def test_official_builder_writes_canonical_gpu_uuids(stored: str) -> None:
    """The official builder writes `GPU-` + str(uuid.UUID(gpu_id)): the canonical lower-case
    dashed UUID whatever the case or dashes of the stored id, in NVIDIA_VISIBLE_DEVICES,
    CHUTES_NVIDIA_DEVICES and the cache-init container's NVIDIA_VISIBLE_DEVICES."""
    gpu = Gpu(gpu_id=stored, server_id="node-uid-1", model_short_ref="h100")
    assert ko.gpu_device_name(gpu) == CANONICAL
    other = make_gpus()[1]
    job = _job(make_chute("0.6.1", tee=False), ko.LaunchParams(), gpus=[gpu, other])
    devices = f"{CANONICAL},GPU-fedcba98-7654-3210-fedc-ba9876543210"
    env = _env(job)
    assert env["NVIDIA_VISIBLE_DEVICES"] == env["CHUTES_NVIDIA_DEVICES"] == devices
    assert _env(job, "initContainers")["NVIDIA_VISIBLE_DEVICES"] == devices


@pytest.mark.parametrize(
    "stored", ["gpu00", "GPU-abc-def", "", "0123456789abcdef0123456789abcde", "GPU-"]
)
def test_a_gpu_id_that_is_not_a_uuid_is_refused(stored: str) -> None:
    """The official builder fails the deployment on such an id (uuid.UUID raises); so does
    gepetto, with an error naming the id, instead of writing a device name matching no GPU."""
    gpu = Gpu(gpu_id=stored, server_id="node-uid-1", model_short_ref="h100")
    with pytest.raises(InvalidInputError, match="not a UUID"):
        ko.gpu_device_name(gpu)
    with pytest.raises(InvalidInputError, match="not a UUID"):
        _job(make_chute("0.6.1", tee=False), ko.LaunchParams(), gpus=[gpu, make_gpus()[1]])


def test_a_job_port_repeating_a_chute_port_is_not_added_twice() -> None:
    """The official builder would list 8001/TCP twice in the Service (the API refuses that);
    gepetto lists it once in the Service and once among the container ports."""
    chute = make_chute("0.6.1", tee=False)
    launch = ko.LaunchParams(
        job_ports=ko.normalize_job_ports([{"port": 8001, "proto": "tcp"}, {"port": 8001}])
    )
    svc = kube_service.build_chute_service(chute, make_deployment(), SETTINGS, launch)
    assert [(p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        (8000, "TCP"),
        (8001, "TCP"),
    ]
    job = _job(chute, launch)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert [(p["containerPort"], p["protocol"]) for p in container["ports"]] == [
        (8000, "TCP"),
        (8001, "TCP"),
    ]
