"""k8s/grafana/gepetto-dashboard.json: every query names metrics gepetto exports, every
exported metric is on the dashboard, and kustomize ships it as a labelled ConfigMap."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

import bot.metrics  # noqa: F401  (the bot's metrics join the process registry)
from gepetto_core.ops.metrics import METRICS

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "k8s" / "grafana" / "gepetto-dashboard.json"
_METRIC = re.compile(r"\bgepetto_[a-z_]+")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def exported() -> set[str]:
    names: set[str] = set()
    for collector in METRICS.registry.collect():
        names.add(collector.name)
    return names


def _family(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def test_every_query_uses_exported_metrics_and_every_metric_is_shown() -> None:
    used = {_family(m) for expr in queries() for m in _METRIC.findall(expr)}
    assert used, "the dashboard queries something"
    assert used <= exported(), used - exported()
    assert exported() <= used, f"not on the dashboard: {exported() - used}"


def test_panels_are_well_formed() -> None:
    panels = dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}" and p["targets"]
    variables = {v["name"] for v in dashboard()["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    assert all('job=~"$job"' in expr for expr in queries())


def test_kustomize_ships_it_as_a_configmap_the_grafana_sidecar_picks_up() -> None:
    kustomization = yaml.safe_load((ROOT / "k8s" / "kustomization.yaml").read_text())
    [generator] = kustomization["configMapGenerator"]
    assert generator["options"]["labels"] == {"grafana_dashboard": "1"}
    assert generator["files"] == ["grafana/gepetto-dashboard.json"]
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return
    rendered = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "k8s")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    [config] = [
        d
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == "gepetto-grafana-dashboard"
    ]
    assert json.loads(config["data"]["gepetto-dashboard.json"]) == dashboard()
