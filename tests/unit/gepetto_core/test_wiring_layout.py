"""`Runtime.cluster` serves the layout the settings name: single → KubeCluster, multi →
FleetCluster over the source GEPETTO_CLUSTER_SOURCE names, auto → detected on first use.
Building any of them connects nothing (commands stay lazy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gepetto_core.adapters.direct_source import DirectSource
from gepetto_core.adapters.kube import KubeCluster
from gepetto_core.adapters.kube_fleet import FleetCluster
from gepetto_core.adapters.kube_layout import LayoutCluster
from gepetto_core.adapters.monitor_source import MonitorSource
from gepetto_core.config import load_settings
from gepetto_core.errors import ConfigError
from gepetto_core.wiring import Runtime

# Nothing listens on port 9: building must not need it to.
DSN = "postgresql://postgres@127.0.0.1:9/none"


def runtime(tmp_path: Path, **env: str) -> Runtime:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("not read until the first request")
    return Runtime(load_settings({"KUBECONFIG": str(kubeconfig), "POSTGRESQL": DSN, **env}))


async def test_single_is_the_one_cluster_of_kubeconfig(tmp_path: Path) -> None:
    rt = runtime(tmp_path, GEPETTO_CLUSTER_LAYOUT="single")
    assert isinstance(rt.cluster, KubeCluster)
    assert rt.cluster is rt.kube_cluster
    await rt.close()


async def test_auto_builds_nothing_before_the_first_call(tmp_path: Path) -> None:
    rt = runtime(tmp_path)  # auto is the default
    assert isinstance(rt.cluster, LayoutCluster)
    assert rt.cluster.layout is None
    assert "kube_cluster" not in vars(rt) and "fleet_cluster" not in vars(rt)
    await rt.close()


@pytest.mark.parametrize(
    ("env", "source"),
    [
        ({"GEPETTO_CLUSTER_SOURCE": "direct"}, DirectSource),
        ({"REDIS_URL": "redis://127.0.0.1:9/0"}, MonitorSource),  # monitor is the default
        ({"GEPETTO_MONITOR_REDIS_URL": "redis://127.0.0.1:9/3"}, MonitorSource),
    ],
)
async def test_multi_is_a_fleet_over_the_chosen_source(
    tmp_path: Path, env: dict[str, str], source: type
) -> None:
    rt = runtime(tmp_path, GEPETTO_CLUSTER_LAYOUT="multi", **env)
    assert isinstance(rt.cluster, FleetCluster)
    assert isinstance(rt.cluster_source, source)
    assert "kube_api" not in vars(rt)  # the control plane is not needed for the fleet
    await rt.close()


async def test_the_monitor_cache_defaults_to_redis_url(tmp_path: Path) -> None:
    rt = runtime(tmp_path, GEPETTO_CLUSTER_LAYOUT="multi", REDIS_URL="redis://127.0.0.1:9/4")
    assert rt.monitor_redis.connection_pool.connection_kwargs["db"] == 4
    await rt.close()
    rt = runtime(
        tmp_path,
        GEPETTO_CLUSTER_LAYOUT="multi",
        REDIS_URL="redis://127.0.0.1:9/4",
        GEPETTO_MONITOR_REDIS_URL="redis://127.0.0.1:9/5",
    )
    assert rt.monitor_redis.connection_pool.connection_kwargs["db"] == 5
    await rt.close()


async def test_multi_with_the_monitor_source_and_no_redis_names_the_setting(
    tmp_path: Path,
) -> None:
    rt = runtime(tmp_path, GEPETTO_CLUSTER_LAYOUT="multi")
    with pytest.raises(ConfigError) as missing:
        _ = rt.cluster
    assert missing.value.variable == "GEPETTO_MONITOR_REDIS_URL"
    assert "REDIS_URL" in str(missing.value) and "direct" in str(missing.value)
    await rt.close()
