"""The chutes-monitor cache's verdicts, objects and messages (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gepetto_core.adapters import monitor_cache as mc

NOW = datetime(2026, 12, 5, 8, 0, 0, tzinfo=UTC)  # microsecond 0: isoformat() omits them


def health(state: str, beat: datetime | str, error: str = "") -> dict[str, str]:
    stamp = beat if isinstance(beat, str) else beat.isoformat()
    return {
        "cluster_name": "gpu-0",
        "state": state,
        "last_heartbeat": stamp,
        "error_message": error,
        "heartbeat_failures": "0",
    }


def test_timestamps_parse_with_or_without_microseconds_and_naive_means_utc() -> None:
    assert mc.parse_timestamp(NOW.isoformat()) == NOW  # "...T08:00:00+00:00", no %f part
    assert mc.parse_timestamp("2026-12-05T08:00:00.123456+00:00") == NOW.replace(microsecond=123456)
    assert mc.parse_timestamp("2026-12-05T08:00:00Z") == NOW
    assert mc.parse_timestamp("2026-12-05T08:00:00") == NOW
    assert mc.parse_timestamp("") is None
    assert mc.parse_timestamp("yesterday") is None
    assert mc.parse_timestamp(None) is None


def test_an_active_fresh_cluster_is_believed_as_of_its_heartbeat() -> None:
    beat = NOW - timedelta(seconds=30)
    assert mc.health_verdict(health("active", beat), NOW, max_age=90) == beat


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        ({}, "not registered with the monitor"),
        (
            health("unhealthy", NOW, "heartbeat is stale"),
            "reports the cluster unhealthy: heartbeat",
        ),
        (health("error", NOW), "reports the cluster error: no reason given"),
        (health("inactive", NOW), "reports the cluster inactive"),
        (health("active", ""), "no usable heartbeat"),
        (health("active", "garbage"), "no usable heartbeat"),
        (health("active", NOW - timedelta(seconds=91)), "monitor data 91 s old (limit 90 s)"),
        (health("active", NOW + timedelta(seconds=300)), "300 s in the future (clock skew)"),
        (health("starting", NOW), "resyncing in the monitor (state starting)"),
    ],
)
def test_clusters_not_to_believe(found: dict[str, str], reason: str) -> None:
    verdict = mc.health_verdict(found, NOW, max_age=90)
    assert isinstance(verdict, str) and reason in verdict


def test_starting_is_believed_once_the_snapshot_was_announced_after_it_began() -> None:
    began = NOW - timedelta(seconds=2)
    found = health("starting", began)
    assert mc.health_verdict(found, NOW, max_age=90, snapshot_done=began) == began
    assert mc.health_verdict(found, NOW, max_age=90, snapshot_done=NOW) == began
    earlier = began - timedelta(seconds=1)  # an older resync's announcement: not this one
    assert isinstance(mc.health_verdict(found, NOW, max_age=90, snapshot_done=earlier), str)


def _job(name: str, deployment_id: str, chute: bool = True) -> dict[str, object]:
    labels = {"chutes/deployment-id": deployment_id}
    if chute:
        labels["chutes/chute"] = "true"
    meta = {"name": name, "namespace": "chutes", "labels": labels, "resourceVersion": "42"}
    return {"metadata": meta, "spec": {"template": {"spec": {"nodeName": "gpu-0"}}}}


def _pod(name: str, deployment_id: str, ns: str = "chutes") -> dict[str, object]:
    meta = {"name": name, "namespace": ns, "labels": {"chutes/deployment-id": deployment_id}}
    return {"metadata": meta, "status": {"phase": "Running"}}


def test_a_snapshot_joins_pods_to_chute_jobs_and_keeps_the_namespace_only() -> None:
    hashes = {
        "job": {
            "chutes:chute-a": json.dumps(_job("chute-a", "a")),
            "chutes:other": json.dumps(_job("other", "b", chute=False)),
        },
        "pod": {
            "chutes:chute-a-x": json.dumps(_pod("chute-a-x", "a")),
            "monitoring:p": json.dumps(_pod("p", "a", ns="monitoring")),
            "kube-system:broken": "{not json",  # never parsed: another namespace
        },
        "node": {"None:gpu-0": json.dumps({"metadata": {"name": "gpu-0", "uid": "u"}})},
    }
    snapshot = mc.build_snapshot("gpu-0", hashes, "chutes", NOW)
    assert [j.name for j in snapshot.jobs] == ["chute-a"]
    assert [p.name for p in snapshot.jobs[0].pods] == ["chute-a-x"]
    assert [p.name for p in snapshot.pods] == ["chute-a-x"]
    assert [n.name for n in snapshot.nodes] == ["gpu-0"]
    assert snapshot.job_versions == {"chute-a": "42"}
    assert snapshot.services == [] and snapshot.legacy == [] and snapshot.as_of == NOW


@pytest.mark.parametrize("raw", ["{not json", "[1]", "null", '"text"'])
def test_one_unreadable_object_makes_the_snapshot_fail(raw: str) -> None:
    with pytest.raises(mc.UnreadableObject, match="cached node None:gpu-0 is not valid JSON"):
        mc.build_snapshot("gpu-0", {"node": {"None:gpu-0": raw}}, "chutes", NOW)


def test_deployment_pods_counts_an_unreadable_pod_as_present() -> None:
    pods = {
        "chutes:a-1": json.dumps(_pod("a-1", "a")),
        "chutes:b-1": json.dumps(_pod("b-1", "b")),
        "chutes:weird": "{not json",
        "other:a-2": json.dumps(_pod("a-2", "a", ns="other")),
    }
    assert mc.deployment_pods(pods, "chutes", "a") == ["chutes:a-1", "chutes:weird"]
    assert mc.deployment_pods({"chutes:b-1": pods["chutes:b-1"]}, "chutes", "a") == []


def test_cluster_and_pod_messages() -> None:
    stamp = NOW.isoformat()
    added = json.dumps({"cluster": "gpu-0", "event_type": "ADDED", "timestamp": stamp})
    assert mc.parse_cluster_message("clusters:all", added) == mc.ClusterChange(
        "gpu-0", "ADDED", NOW
    )
    deleted = added.replace("ADDED", "DELETED").encode()
    assert mc.parse_cluster_message("clusters:all", deleted) == mc.ClusterChange(
        "gpu-0", "DELETED", NOW
    )
    reconnect = json.dumps({"cluster": "gpu-0", "timestamp": "bad"})
    assert mc.parse_cluster_message("clusters:all:reconnect", reconnect) == mc.ClusterChange(
        "gpu-0", "RECONNECT", None
    )
    assert mc.parse_cluster_message("clusters:all", added.replace("ADDED", "MOVED")) is None
    assert mc.parse_cluster_message("clusters:all", "[]") is None
    assert mc.parse_cluster_message("clusters:all", "{") is None

    event = {"type": "DELETED", "object": _pod("chute-a-x", "a")}
    pod = json.dumps({"cluster": "gpu-0", "event": event, "timestamp": stamp})
    assert mc.parse_pod_message(pod) == ("gpu-0", "a")
    assert mc.parse_pod_message(json.dumps({"cluster": "gpu-0"})) == ("gpu-0", None)
    assert mc.parse_pod_message("nope") is None


def test_redact_removes_secrets_and_url_credentials() -> None:
    message = "Error connecting to redis://admin:hunter2@10.0.0.5:6379/0: bad hunter2"
    assert mc.redact(message, ["hunter2", None, ""]) == (
        "Error connecting to redis://***@10.0.0.5:6379/0: bad ***"
    )
    assert mc.redact("rediss://:pw@host/0", []) == "rediss://***@host/0"
