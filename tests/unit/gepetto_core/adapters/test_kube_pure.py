"""Pure pieces around the cluster: quantities, disk arithmetic, node sizing, views, error
translation, and the sandbox's selectors and patches."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from gepetto_core import node_capacity
from gepetto_core.adapters.kube_errors import translate_error
from gepetto_core.adapters.kube_views import node_view, pod_view
from gepetto_core.errors import (
    ClusterConflictError,
    ClusterError,
    ClusterForbiddenError,
    ClusterNotFoundError,
    ClusterUnavailableError,
    InvalidInputError,
)
from gepetto_sandbox.cluster.fleet import build_fleet
from gepetto_sandbox.cluster.patching import json_patch, merge_patch
from gepetto_sandbox.cluster.selectors import field_matcher, label_matcher


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100Gi", Decimal(100 * 2**30)),
        ("500M", Decimal(500 * 10**6)),
        ("1048576Ki", Decimal(2**30)),
        ("250m", Decimal("0.25")),
        ("2", Decimal(2)),
        ("1e3", Decimal(1000)),
    ],
)
def test_parse_quantity(text: str, expected: Decimal) -> None:
    assert node_capacity.parse_quantity(text) == expected


def test_parse_quantity_rejects_nonsense() -> None:
    with pytest.raises(InvalidInputError):
        node_capacity.parse_quantity("12 parsecs")


def _pod(phase: str, *requests: str, init: str | None = None) -> dict[str, object]:
    containers = [
        {"name": f"c{i}", "resources": {"requests": {"ephemeral-storage": r}}}
        for i, r in enumerate(requests)
    ]
    spec: dict[str, object] = {"containers": containers}
    if init:
        spec["initContainers"] = [
            {"name": "i", "resources": {"requests": {"ephemeral-storage": init}}}
        ]
    return {"spec": spec, "status": {"phase": phase}}


def test_node_disk_counts_running_and_pending_pods_only() -> None:
    pods = [
        _pod("Running", "50Gi", init="5Gi"),
        _pod("Pending", "10Gi", "1024Mi"),
        _pod("Succeeded", "400Gi"),
        _pod("Failed", "400Gi"),
    ]
    disk = node_capacity.compute_node_disk("n1", "200Gi", pods)
    assert disk.total_gib == 200
    assert disk.requested_gib == 66
    assert disk.available_gib == 200 - 66 - 20


def test_node_disk_clamps_at_zero_and_defaults_unknown_capacity() -> None:
    assert (
        node_capacity.compute_node_disk("n1", "30Gi", [_pod("Running", "20Gi")]).available_gib == 0
    )
    assert node_capacity.compute_node_disk("n1", "garbage", []).total_gib == 100


@pytest.mark.parametrize(
    ("cpu", "gpus", "expected"), [(128, 8, 4), (34, 8, 4), (20, 8, 2), (8, 8, 1), (10, 8, 1)]
)
def test_cpu_per_gpu(cpu: float, gpus: int, expected: int) -> None:
    assert node_capacity.cpu_per_gpu(cpu, gpus) == expected


def test_memory_per_gpu_caps_at_gpu_memory_and_ignores_a_missing_label() -> None:
    # floor(1018 * .8 / 8) = 101, capped at 79 GiB
    assert node_capacity.memory_per_gpu(1024, 8, 81559) == 79
    assert node_capacity.memory_per_gpu(1024, 8, None) == 101  # upstream gave 0 here
    assert node_capacity.memory_per_gpu(10, 8, 81559) == 1


def test_node_view_from_fleet_node() -> None:
    fleet_node = build_fleet(seed=3, count=1, tee_every=1)[0]
    view = node_view(fleet_node.to_object())
    assert view.name == fleet_node.name and view.server_id == fleet_node.uid
    assert view.ready and view.worker and view.is_tee
    assert view.gpu_short_ref == "h100" and view.gpu_count == 8
    assert view.gpu_memory_mib == 81559
    assert view.external_ip == fleet_node.external_ip
    assert view.ephemeral_storage_gib == fleet_node.ephemeral_gib
    assert view.cpu_capacity == fleet_node.cpu


def test_pod_view_reads_the_first_container_state() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "chutes", "uid": "u", "labels": {"a": "b"}},
        "spec": {"nodeName": "n1"},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "chute",
                    "ready": False,
                    "restartCount": 2,
                    "state": {"terminated": {"exitCode": 3, "reason": "Error"}},
                    "lastState": {"waiting": {"reason": "CrashLoopBackOff"}},
                }
            ],
        },
    }
    view = pod_view(pod)
    assert not view.ready and view.restart_count == 2 and view.node_name == "n1"
    assert view.state is not None and view.state.state == "terminated"
    assert view.state.exit_code == 3 and view.state.reason == "Error"
    assert view.last_state is not None and view.last_state.reason == "CrashLoopBackOff"


def _api_error(status: int, message: str = "boom") -> ApiException:
    error = ApiException(status=status, reason="Reason")
    error.body = json.dumps({"kind": "Status", "message": message, "code": status})
    return error


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, ClusterNotFoundError),
        (409, ClusterConflictError),
        (401, ClusterForbiddenError),
        (403, ClusterForbiddenError),
        (500, ClusterUnavailableError),
        (503, ClusterUnavailableError),
        (429, ClusterUnavailableError),
        (422, ClusterError),
    ],
)
def test_translate_api_errors(status: int, kind: type[ClusterError]) -> None:
    error = translate_error(_api_error(status, 'jobs.batch "x" not found'), "read job x")
    assert type(error) is kind
    assert error.status == status
    assert "read job x" in str(error) and "not found" in str(error)


def test_translate_timeouts_and_connection_errors() -> None:
    assert isinstance(translate_error(TimeoutError(), "list nodes"), ClusterUnavailableError)
    refused = ConnectionRefusedError(111, "Connection refused")
    assert isinstance(translate_error(refused, "list nodes"), ClusterUnavailableError)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "db"}, False),
        ("app!=web", {}, True),
        ("gpu in (h100,h200)", {"gpu": "h200"}, True),
        ("gpu notin (h100, h200)", {"gpu": "h200"}, False),
        ("chutes/worker", {"chutes/worker": "true"}, True),
        ("!chutes/worker", {"chutes/worker": "true"}, False),
        ("app=web,tier notin (db)", {"app": "web", "tier": "front"}, True),
        ("", {}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert label_matcher(selector)(labels) is expected


def test_field_selectors() -> None:
    pod = {
        "metadata": {"name": "p1", "namespace": "chutes"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"},
    }
    assert field_matcher("spec.nodeName=n1,status.phase!=Failed")(pod)
    assert not field_matcher("metadata.name=p2")(pod)
    with pytest.raises(InvalidInputError):
        field_matcher("spec.whatever=1")


def test_merge_and_json_patch() -> None:
    doc = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    assert merge_patch(doc, {"a": {"b": None, "c": [3]}, "e": 1}) == {
        "a": {"c": [3]},
        "d": "x",
        "e": 1,
    }
    patched = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/c/-", "value": 3},
            {"op": "replace", "path": "/d", "value": "y"},
            {"op": "remove", "path": "/a/b"},
            {"op": "copy", "from": "/d", "path": "/e"},
        ],
    )
    assert patched == {"a": {"c": [1, 2, 3]}, "d": "y", "e": "y"}
    assert doc["a"] == {"b": 1, "c": [1, 2]}  # the input is not touched
    with pytest.raises(InvalidInputError):
        json_patch(doc, [{"op": "test", "path": "/d", "value": "nope"}])
