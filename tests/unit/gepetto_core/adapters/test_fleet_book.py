"""The multi-cluster bookkeeping (adapters/fleet_book.py) and the kubeconfig checks of
adapters/server_clusters.py: pure, no cluster."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gepetto_core.adapters.cluster_source import ClusterSnapshot, ClusterUnknown
from gepetto_core.adapters.fleet_book import (
    SeenJob,
    health_after,
    health_reason,
    label_matcher,
    merge_reads,
    seen_jobs,
    where_seen,
)
from gepetto_core.adapters.server_clusters import (
    NO_KUBECONFIG,
    parse_kubeconfig,
    scrub,
    secret_strings,
)
from gepetto_core.errors import InvalidInputError
from gepetto_core.models.cluster import ChuteJobView, NodeView

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
TOKEN = "tok-0123456789abcdef"


def job(name: str, deployment_id: str | None, version: str | None = "7") -> ChuteJobView:
    return ChuteJobView(
        name=name,
        namespace="chutes",
        uid=name,
        deployment_id=deployment_id,
        chute_id="c",
        version="v1",
        resource_version=version,
    )


def snapshot(name: str, *jobs: ChuteJobView, as_of: datetime = T0) -> ClusterSnapshot:
    node = NodeView(name=name, server_id=f"uid-{name}", ready=True)
    return ClusterSnapshot(
        name=name, jobs=jobs, legacy=[], services=[], nodes=[node], pods=[], as_of=as_of
    )


# --------------------------------------------------------------------------- health


def test_a_snapshot_is_reachable_with_its_data_age() -> None:
    health = health_after(snapshot("a"), None, source="monitor", now=T0 + timedelta(seconds=12))
    assert (health.state, health.last_seen, health.data_age_seconds) == ("reachable", T0, 12.0)
    assert health.error is None and health.source == "monitor"


def test_a_failed_read_is_unreachable_and_keeps_the_last_good_read() -> None:
    good = health_after(snapshot("a"), None, source="direct", now=T0)
    later = T0 + timedelta(seconds=90)
    failed = health_after(ClusterUnknown("a", "timed out"), good, source="direct", now=later)
    assert (failed.state, failed.error, failed.last_seen) == ("unreachable", "timed out", T0)
    assert failed.data_age_seconds == 90.0
    assert health_reason(failed, "a") == "cluster a unreachable: timed out"
    assert health_reason(good, "a") is None
    assert health_reason(None, "a") == "cluster a unknown: not read yet"


def test_a_server_without_a_usable_kubeconfig_is_unknown_not_unreachable() -> None:
    read = ClusterUnknown("a", NO_KUBECONFIG)
    health = health_after(read, None, source="direct", now=T0, usable=False)
    assert (health.state, health.last_seen, health.data_age_seconds) == ("unknown", None, None)


# --------------------------------------------------------------------------- merge and index


def test_merge_keeps_unknown_clusters_out_of_the_lists() -> None:
    reads = {
        "b": snapshot("b", job("chute-2", "2")),
        "a": snapshot("a", job("chute-1", "1")),
        "c": ClusterUnknown("c", "refused"),
    }
    reading = merge_reads(reads, [])
    assert [j.name for j in reading.jobs or []] == ["chute-1", "chute-2"]
    assert [n.name for n in reading.nodes or []] == ["a", "b"]
    assert reading.unknown == {"c": "refused"}


def test_merge_of_nothing_read_is_empty_lists_and_every_cluster_unknown() -> None:
    reading = merge_reads({"a": ClusterUnknown("a", "x")}, [])
    assert reading.jobs == [] and reading.nodes == [] and reading.unknown == {"a": "x"}


def test_the_index_finds_a_job_in_one_or_several_clusters() -> None:
    a = snapshot("a", job("chute-1", "1"), job("unlabelled", None))
    b = ClusterSnapshot(**{**a.__dict__, "name": "b", "job_versions": {"chute-1": "99"}})
    index = {"a": seen_jobs(a), "b": seen_jobs(b)}
    assert where_seen(index, "1") == [SeenJob("a", "chute-1", "7"), SeenJob("b", "chute-1", "99")]
    assert where_seen(index, "2") == []
    assert list(index["a"]) == ["1"]  # a Job without the deployment label is not a chute's


# --------------------------------------------------------------------------- selectors


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {}, True),
        ("chutes/worker", {"chutes/worker": ""}, True),
        ("chutes/worker", {"other": "x"}, False),
        ("!chutes/worker", {"other": "x"}, True),
        ("a=1,b", {"a": "1", "b": "z"}, True),
        ("a=1,b", {"a": "1"}, False),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("gpu in (h100, h200)", {"gpu": "h200"}, True),
        ("gpu notin (h100,h200),a=1", {"gpu": "a6000", "a": "1"}, True),
        ("gpu in (h100)", {}, False),
    ],
)
def test_label_selectors(selector: str | None, labels: dict[str, str], expected: bool) -> None:
    assert label_matcher(selector)(labels) is expected


def test_an_unparseable_selector_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        label_matcher("a b c")


# --------------------------------------------------------------------------- kubeconfig


def stored(name: str = "gpu-1") -> dict[str, object]:
    return {
        "clusters": [{"name": name, "cluster": {"server": "https://10.0.0.1:6443"}}],
        "users": [{"name": name, "user": {"token": TOKEN}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": "miner",
    }


def test_a_stored_kubeconfig_parses_from_json_or_yaml() -> None:
    assert parse_kubeconfig(json.dumps(stored()), "gpu-1") == stored()
    assert parse_kubeconfig("clusters: []\ncontexts:\n- name: gpu-1\n", "gpu-1") == {
        "clusters": [],
        "contexts": [{"name": "gpu-1"}],
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, NO_KUBECONFIG),
        ("   ", NO_KUBECONFIG),
        (f"users:\n- token: {TOKEN}\n  : ][", "kubeconfig is not valid JSON or YAML (line 3)"),
        ("[1, 2]", "kubeconfig is not a mapping"),
        (json.dumps(TOKEN), "kubeconfig is not a mapping"),
        (TOKEN, "kubeconfig is not a mapping"),
        (json.dumps(stored("gpu-2")), "kubeconfig has no context named gpu-1"),
    ],
)
def test_an_unusable_kubeconfig_says_why_without_quoting_it(text: str | None, reason: str) -> None:
    assert parse_kubeconfig(text, "gpu-1") == reason


def test_secrets_are_scrubbed_from_messages() -> None:
    secrets = secret_strings(stored())
    assert TOKEN in secrets and "gpu-1" not in secrets  # names are too short to be secrets
    message = f"bad token {TOKEN} for https://10.0.0.1:6443"
    assert scrub(message, secrets) == "bad token <redacted> for <redacted>"
