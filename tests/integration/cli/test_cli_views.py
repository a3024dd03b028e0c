"""Read commands through the real `gepetto` entry point: table headers, key cells, the `--json`
shape, the data-age footer and exit codes."""

from __future__ import annotations

from .conftest import CliWorld


def header_line(out: str) -> str:
    """The tabulate header row (the line above the dashes)."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("---") and i > 0:
            return lines[i - 1]
    raise AssertionError(f"no table in:\n{out}")


async def test_nodes_lists_every_server_with_cluster_status_and_disk(cli: CliWorld) -> None:
    run = await cli.run("nodes")
    assert run.code == 0, run.err
    assert header_line(run.out).split() == [
        "server_id", "node", "ip", "status", "gpu", "gpus", "used", "cost/GPU", "disk", "GB",
        "disk", "used", "GB", "locked",
    ]  # fmt: skip
    for node in cli.world.fleet:
        assert node.name in run.out and node.uid[:8] in run.out and node.external_ip in run.out
    data = (await cli.run("--json", "nodes")).json()
    assert data["kind"] == "table" and data["data_label"] is None
    rows = {r["node"]: r for r in data["rows"]}
    assert set(rows) == {n.name for n in cli.world.fleet}
    for node in cli.world.fleet:
        row = rows[node.name]
        assert row["status"] == "Ready" and row["gpu"] == node.gpu_type
        assert row["gpus_total"] == node.gpu_count and row["disk_total_gb"] == node.ephemeral_gib
        assert row["server_id"] == node.uid and row["locked"] is False


async def test_chutes_are_ranked_with_a_data_age(cli: CliWorld) -> None:
    run = await cli.run("chutes", "--limit", "10")
    assert run.code == 0, run.err
    assert "expected gain" in header_line(run.out) and "why not" in header_line(run.out)
    assert "validator data" in run.out.splitlines()[-1] and "s old" in run.out.splitlines()[-1]
    data = (await cli.run("--json", "chutes", "--limit", "200")).json()
    assert isinstance(data["data_age_seconds"], int | float) and data["data_age_seconds"] >= 0
    rows = data["rows"]
    assert len(rows) == len(await cli.rt.inventory.list_chutes())
    scalable = [r for r in rows if r["scalable"]]
    assert scalable and rows[: len(scalable)] == scalable  # eligible first
    gains = [r["gain"] for r in scalable]
    assert gains == sorted(gains, reverse=True)
    assert all(r["why_not"] for r in rows if not r["scalable"])

    filtered = (await cli.run("--json", "chutes", "-g", "h100", "--limit", "200")).json()
    assert filtered["rows"] and all("h100" in r["gpus"].split(",") for r in filtered["rows"])


async def test_scales_ranks_pairs_and_filters_by_server_and_gpu(cli: CliWorld) -> None:
    run = await cli.run("scales")
    assert run.code == 0, run.err
    for title in ("chute", "server", "cost", "value $/h", "fits now"):
        assert title in header_line(run.out)
    assert "value is the $/h one more instance is expected to earn" in run.out
    node = next(n for n in cli.world.fleet if n.gpu_type == "h100")
    data = (await cli.run("--json", "scales", "-s", node.name, "--limit", "100")).json()
    assert data["rows"] and {r["server"] for r in data["rows"]} == {node.name}
    fitting = [r for r in data["rows"] if r["fits"]]
    assert [r["value"] for r in fitting] == sorted((r["value"] for r in fitting), reverse=True)
    by_id = (await cli.run("--json", "scales", "-s", node.uid[:8], "--limit", "100")).json()
    assert by_id["rows"] == data["rows"]
    gpu = (await cli.run("--json", "scales", "-g", "l40s", "--limit", "100")).json()
    assert gpu["rows"] and {r["gpu"] for r in gpu["rows"]} == {"l40s"}


async def test_why_explains_a_chute_by_name(cli: CliWorld) -> None:
    chute = cli.launchable_chute()
    run = await cli.run("why", chute["name"])
    assert run.code == 0, run.err
    assert run.out.startswith(f"INFO: {chute['name']} ")
    assert "autoscaler mode: active" in run.out
    data = (await cli.run("--json", "why", chute["chute_id"])).json()
    assert data["kind"] == "message" and chute["chute_id"] in data["details"][0]


async def test_operator_reads(cli: CliWorld) -> None:
    backoff = await cli.run("backoff")
    assert backoff.code == 0 and backoff.out.startswith("Failure back-off (0 active)")
    status = await cli.run("--json", "autoscaler", "status")
    assert status.code == 0 and status.json()["text"] == "autoscaler: active"
    dry = await cli.run("recycle", "--dry-run")
    assert dry.code == 0 and dry.out.startswith("Recycle (dry run: nothing changed)")
    helped = await cli.run("deploy", "--help")
    assert helped.code == 0 and "usage: deploy -c CHUTE -s SERVER" in helped.out
