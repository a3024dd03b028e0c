"""The `nodes` table in the terminal and in Slack: in the multi-cluster layout each server's
cluster health and data age, and a footer counting clusters by state; in the single layout
the table it always had."""

from __future__ import annotations

import json

from bot.render import render_slack
from gepetto_core.commands.node_table import nodes_table
from gepetto_core.models.cluster import ClusterHealth, NodeDisk, NodeView
from gepetto_core.models.inventory import Gpu, Server
from gepetto_core.render_text import render_text
from gepetto_sandbox.slack import check_message

V = "5Validator"
SERVERS = [
    Server(server_id=f"s{n}", validator=V, name=f"gpu-{n}", ip_address=f"10.0.0.{n}",
           gpu_count=2, hourly_cost=1.5)
    for n in (1, 2, 3)
]  # fmt: skip
GPUS = [
    Gpu(gpu_id=f"g{n}{i}", server_id=f"s{n}", model_short_ref="h100", verified=True,
        deployment_id="d1" if (n, i) == (1, 0) else None)
    for n in (1, 2, 3) for i in (0, 1)
]  # fmt: skip
NODES = {
    s.name: NodeView(name=s.name, server_id=s.server_id, ready=True, gpu_count=2) for s in SERVERS
}
DISKS = {
    s.name: NodeDisk(node=s.name, total_gib=500, requested_gib=120, reserve_gib=20,
                     available_gib=360)
    for s in SERVERS
}  # fmt: skip
MULTI = [
    ClusterHealth(name="gpu-1", state="reachable", source="monitor", data_age_seconds=4.0),
    ClusterHealth(name="gpu-2", state="unreachable", source="monitor", error="timed out",
                  data_age_seconds=725.0),
    ClusterHealth(name="gpu-3", state="unknown", source="monitor"),
]  # fmt: skip
SINGLE = [ClusterHealth(name="*", state="reachable", source="single", data_age_seconds=0.0)]


def multi_table() -> object:
    # gpu-2's cluster was not read: its node is not in the listing
    nodes = {k: v for k, v in NODES.items() if k != "gpu-2"}
    return nodes_table(SERVERS, GPUS, nodes, DISKS, MULTI)


def test_multi_layout_rows_say_cluster_health_and_data_age_in_the_terminal() -> None:
    text = render_text(multi_table())  # type: ignore[arg-type]
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("server_id"))
    assert "cluster" in header and "data age" in header
    row = {line.split()[1]: line for line in lines if line.startswith("s")}
    assert "reachable" in row["gpu-1"] and "4s" in row["gpu-1"]
    assert "unreachable: timed out" in row["gpu-2"] and "12m05s" in row["gpu-2"]
    assert row["gpu-2"].split()[3] == "unknown"  # its node status: not read, not "missing"
    assert "missing" not in text
    assert lines[-1] == "clusters: 1 reachable, 1 unreachable, 1 unknown (gpu-2)"


def test_multi_layout_rows_in_slack() -> None:
    message = render_slack(multi_table())  # type: ignore[arg-type]
    assert check_message(message.text, message.blocks).error is None
    blocks = json.dumps(message.blocks)
    assert "unreachable: timed out" in blocks and "12m05s" in blocks
    assert '"data age"' in blocks
    assert "clusters: 1 reachable, 1 unreachable, 1 unknown (gpu-2)" in blocks


def test_a_server_waiting_for_its_removal_is_named() -> None:
    [first, *_] = SERVERS
    table = nodes_table(SERVERS, GPUS, NODES, DISKS, SINGLE, {first.server_id: "deleted"})
    assert table.note == f"to be removed once their deployments are (recycle): {first.name}"


def test_single_layout_keeps_its_table() -> None:
    table = nodes_table(SERVERS, GPUS, NODES, DISKS, SINGLE)
    assert [c.key for c in table.columns] == [
        "server_id", "node", "ip", "status", "gpu", "gpus_total", "gpus_used",
        "hourly_cost", "disk_total_gb", "disk_used_gb", "locked",
    ]  # fmt: skip
    assert table.note is None
    text = render_text(table)
    assert "cluster" not in text and "data age" not in text
    message = render_slack(table)
    assert "data age" not in json.dumps(message.blocks)
    assert table.rows[0]["status"] == "Ready" and table.rows[0]["gpus_used"] == 1
