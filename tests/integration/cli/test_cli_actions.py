"""Actions through the real `gepetto` entry point: the plan is printed, confirmation is asked
(declining changes nothing), `-y` applies, progress reaches ready, and the audit log records it."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from gepetto_core.models.state import LedgerEntry
from gepetto_core.services.deployer import DeployRequest

from .conftest import CliWorld


async def test_deploy_to_active_then_undeploy(cli: CliWorld) -> None:
    chute = cli.launchable_chute()
    node = cli.node_for(chute)
    before = await cli.counts()

    declined = await cli.run("deploy", "-c", chute["name"], "-s", node, stdin="n\n")
    assert declined.code == 1
    assert declined.out.startswith(f"Deploy {chute['name']} on {node}")
    assert "1. claim" in declined.out and "launch config" in declined.out
    assert "cancelled; nothing changed" in declined.err
    assert await cli.counts() == before

    run = await cli.run("deploy", "-c", chute["chute_id"], "-s", node, "-y")
    assert run.code == 0, run.err
    assert "OK: deployment" in run.out and "is active" in run.out
    for step in ("claimed", "launch config", "pod running", "instance verified", "active"):
        assert f"✓ {step}" in run.err
    [row] = await cli.rt.inventory.list_deployments()
    assert row.chute_id == chute["chute_id"] and row.deployment_id in run.out

    insts = (await cli.run("--json", "insts", "-d", node)).json()
    [inst] = insts["rows"]
    assert inst["deployment_id"] == row.deployment_id and inst["chute"] == chute["name"]
    assert inst["ready"] is True and inst["status"] == "running" and inst["phase"] == "Running"
    assert inst["active"] is True and inst["verified"] is True and inst["instance_id"]
    assert inst["gpus"] == chute["node_selector"]["gpu_count"]
    assert insts["data_age_seconds"] is not None
    other = next(n.name for n in cli.world.fleet if n.name != node)
    assert (await cli.run("--json", "insts", "-d", other)).json()["rows"] == []

    pods = (await cli.run("--json", "pods", "-n", "chutes")).json()
    [pod] = [p for p in pods["rows"] if row.deployment_id in p["name"]]
    assert pod["node"] == node and pod["phase"] == "Running" and pod["pod_ip"]
    assert pod["started"] is not None

    nodes = {r["node"]: r for r in (await cli.run("--json", "nodes")).json()["rows"]}
    assert nodes[node]["gpus_used"] == chute["node_selector"]["gpu_count"]

    kept = await cli.run("undeploy", "-i", row.deployment_id[:8], stdin="no\n")
    assert kept.code == 1 and f"Undeploy {row.deployment_id}" in kept.out
    assert await cli.rt.inventory.get_deployment(row.deployment_id) is not None

    gone = await cli.run("--json", "undeploy", "-i", row.deployment_id, "-y")
    assert gone.code == 0, gone.err
    outcome = gone.out[gone.out.rindex('{\n  "kind": "composite"') :]
    assert '"removed": true' in outcome
    assert await cli.rt.inventory.list_deployments() == []
    assert cli.world.cluster.objects("jobs", "chutes") == []

    audit = (await cli.run("--json", "audit", "--since", "1h")).json()
    verbs = [(r["verb"], r["allowed"]) for r in audit["rows"]]
    assert ("deploy", True) in verbs and ("undeploy", True) in verbs
    deploy_entry = next(r for r in audit["rows"] if r["verb"] == "deploy")
    assert deploy_entry["actor"].startswith("cli:") and "is active" in deploy_entry["result"]
    assert chute["chute_id"] in deploy_entry["arguments"]


async def test_lock_blocks_deploys_until_unlocked(cli: CliWorld) -> None:
    chute = cli.launchable_chute()
    node = cli.node_for(chute)
    locked = await cli.run("lock", node, "-y")
    assert locked.code == 0 and f"OK: {node} is locked" in locked.out
    rows = {r["node"]: r for r in (await cli.run("--json", "nodes")).json()["rows"]}
    assert rows[node]["locked"] is True

    refused = await cli.run("deploy", "-c", chute["chute_id"], "-s", node, "-y")
    assert refused.code == 1 and refused.out == ""
    assert refused.err_lines == [
        f"gepetto: error: cannot deploy {chute['name']} on {node}: server is locked"
    ]
    assert await cli.rt.inventory.list_deployments() == []

    scales = (await cli.run("--json", "scales", "-s", node)).json()
    assert scales["rows"] and not any(r["fits"] for r in scales["rows"])
    assert all("server_locked" in r["why_not"] for r in scales["rows"])

    unlocked = await cli.run("unlock", node, "-y")
    assert unlocked.code == 0
    assert not any(s.locked for s in await cli.rt.inventory.list_servers())


async def test_autoscaler_pause_and_resume(cli: CliWorld) -> None:
    paused = await cli.run("autoscaler", "pause", "30m", "-y")
    assert paused.code == 0, paused.err
    assert "1. set the autoscaler to paused until" in paused.out
    mode = await cli.rt.state.get_autoscaler_mode()
    assert mode.mode == "paused" and mode.paused_until is not None
    assert mode.updated_by.startswith("cli:")
    status = (await cli.run("--json", "autoscaler", "status")).json()
    assert status["text"].startswith("autoscaler: paused until")
    resumed = await cli.run("autoscaler", "resume", "-y")
    assert resumed.code == 0 and "OK: autoscaler: active" in resumed.out
    assert (await cli.rt.state.get_autoscaler_mode()).mode == "active"


async def test_recycle_removes_what_nothing_tracks(cli: CliWorld) -> None:
    # A crash after the Job was made but before the row stayed: the Job is untracked.
    chute = cli.launchable_chute()
    server_id = next(n.uid for n in cli.world.fleet if n.name == cli.node_for(chute))
    made = await cli.rt.deployer.deploy(DeployRequest(chute["chute_id"], server_id))
    deployment_id = made.deployment.deployment_id
    await cli.rt.inventory.delete_deployment(deployment_id)
    before = await cli.counts()

    dry = await cli.run("recycle", "--dry-run")
    assert dry.code == 0, dry.err
    assert f"delete job chute-{deployment_id}: job not tracked" in dry.out
    assert await cli.counts() == before

    run = await cli.run("recycle", "-y")
    assert run.code == 0, run.err
    assert run.out.startswith("Recycle\n")  # the plan first
    assert re.search(rf"^\d+\. delete job chute-{deployment_id}: job not tracked$", run.out, re.M)
    assert "Recycle: " in run.out and "validator data" in run.out.splitlines()[-1]
    data_rows = [line for line in run.out.splitlines() if line.startswith("delete job")]
    assert data_rows and "job not tracked" in data_rows[0] and "✓" in data_rows[0]
    jobs = cli.world.cluster.objects("jobs", "chutes", f"chutes/deployment-id={deployment_id}")
    assert jobs == [] or all(j["metadata"].get("deletionTimestamp") for j in jobs)


async def test_backoff_lists_a_failed_pair_and_clears_it(cli: CliWorld) -> None:
    chute = cli.launchable_chute()
    node = next(n for n in cli.world.fleet if n.name == cli.node_for(chute))
    started = datetime.now(UTC) - timedelta(minutes=10)
    await cli.rt.state.record_deployment_start(
        LedgerEntry(
            deployment_id=str(uuid.uuid4()),
            chute_id=chute["chute_id"],
            server_id=node.uid,
            gpu_type=node.gpu_type,
            validator=cli.world.validator.hotkey,
            created_at=started,
        )
    )
    [entry] = [e for e in await cli.rt.state.list_ledger() if e.created_at == started]
    await cli.rt.state.record_deployment_end(
        entry.deployment_id, started + timedelta(minutes=3), "crashed", counts_as_failure=True
    )
    listed = (await cli.run("--json", "backoff")).json()
    [row] = [r for r in listed["rows"] if r["chute"] == chute["name"]]
    assert row["scope"] == "pair" and row["server"] == node.name and row["failures"] == 1
    scales = (await cli.run("--json", "scales", "-s", node.name, "--limit", "200")).json()
    [pair] = [r for r in scales["rows"] if r["chute_id"] == chute["chute_id"]]
    assert pair["fits"] is False and "pair_backoff" in pair["why_not"]

    cleared = await cli.run("backoff", "clear", "-c", chute["name"], "-y")
    assert cleared.code == 0, cleared.err
    assert "lift: pair back-off until" in cleared.out
    # every ended run of the chute is forgiven (earlier tests in this module ran it too)
    assert re.search(r"^OK: forgave [1-9]\d* recorded failure\(s\)$", cleared.out, re.M)
    listed = (await cli.run("--json", "backoff")).json()
    assert not [r for r in listed["rows"] if r["chute"] == chute["name"]]
    [entry] = [e for e in await cli.rt.state.list_ledger() if e.created_at == started]
    assert entry.forgiven_by is not None and entry.forgiven_by.startswith("cli:")
