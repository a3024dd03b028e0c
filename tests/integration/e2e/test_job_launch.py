"""A validator job gets the same extra ports and disk whichever path starts it: the
`job_created` event handler, the autoscaler's plain placement, or its preemption. The chute
declares job ports (one repeated, one UDP) and the job asks for a disk size; each path's Job
and Service in the sandbox cluster must carry exactly those."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gepetto_core.models.events import EventReason, MinerEvent
from gepetto_core.scheduling.plan import Placement, Preemption
from gepetto_core.scheduling.snapshot import ChuteUtilization, Snapshot
from gepetto_core.services.autoscaler import Autoscaler
from gepetto_core.services.deployer import DeployRequest
from gepetto_core.services.planning_input import load_snapshot, plan_policy
from tests.integration.cluster_double import split_runtime_cluster
from tests.support.fleet_layouts import in_every_layout

from .conftest import Miner

JOB_DISK_GB = 37
JOB_DEFINITIONS = [
    {
        "name": "run",
        "upload": False,
        "timeout": 3600,
        "disk_gb": 55,  # the job's own figure (JOB_DISK_GB) wins over the definition's
        "ports": [
            {"name": "ssh", "port": 2202, "default": True, "proto": "tcp"},
            {"name": "feed", "port": 9100, "default": False, "proto": "udp"},
        ],
    },
    {
        "name": "other",
        "upload": False,
        "timeout": 60,
        "disk_gb": 5,
        "ports": [{"name": "ssh-again", "port": 2202, "default": True, "proto": "http"}],
    },
]
EXPECTED_SERVICE_PORTS = [
    ("chute-8000", 8000, "TCP"),
    ("chute-8001", 8001, "TCP"),
    ("chute-2202", 2202, "TCP"),
    ("chute-9100", 9100, "UDP"),
]


def job_chute(m: Miner) -> str:
    """A launch-config chute whose validator row declares the job definitions above."""
    chute = m.launch_chute()
    m.world.validator.world.chutes[chute["chute_id"]]["jobs"] = JOB_DEFINITIONS
    return str(chute["chute_id"])


def shape(m: Miner, job_id: str) -> dict[str, Any]:
    """What the job path decides about the Job and its Service (NodePort numbers aside)."""
    [job] = m.cluster.objects("jobs", "chutes", f"chutes/job-id={job_id}")
    deployment_id = job["metadata"]["labels"]["chutes/deployment-id"]
    [service] = m.cluster.objects("services", "chutes", f"chutes/deployment-id={deployment_id}")
    pod = job["spec"]["template"]["spec"]
    [container] = [c for c in pod["containers"] if c["name"] == "chute"]
    return {
        "port_env": sorted(
            e["name"]
            for e in container["env"]
            if e["name"].startswith(("CHUTES_PORT_TCP_", "CHUTES_PORT_UDP_"))
        ),
        "container_ports": sorted((p["containerPort"], p["protocol"]) for p in container["ports"]),
        "service_ports": [
            (p.get("name"), p["port"], p.get("protocol", "TCP")) for p in service["spec"]["ports"]
        ],
        "disk": (
            container["resources"]["requests"]["ephemeral-storage"],
            container["resources"]["limits"]["ephemeral-storage"],
            [v["emptyDir"]["sizeLimit"] for v in pod["volumes"] if v["name"] == "tmp"],
        ),
    }


def autoscaler(m: Miner, chute_id: str) -> Autoscaler:
    """The autoscaler over the real sync, shown only the job chute, not scalable: its open jobs
    are all the planner may place."""
    rt = m.rt

    async def build() -> Snapshot:
        await rt.sync.sync_all()
        loaded = await load_snapshot(rt.inventory, rt.state, rt.sync.snapshots, m.clock())
        only_jobs = ChuteUtilization(scalable=False)
        return replace(
            loaded.snapshot,
            chutes=tuple(
                replace(c, utilization=only_jobs)
                for c in loaded.snapshot.chutes
                if c.chute_id == chute_id
            ),
        )

    policy = replace(plan_policy(m.settings), max_deploys_per_round=None, max_pulls_per_server=None)
    return Autoscaler(
        rt.state,
        rt.deployer,
        rt.validators,
        build,
        policy=policy,
        clock=m.clock,
        synced=lambda: rt.sync.snapshots,
    )


async def by_event(m: Miner, chute_id: str) -> dict[str, Any]:
    """Start a job through the `job_created` handler, note its shape, then end it."""
    job = m.world.validator.create_job(chute_id, disk_gb=JOB_DISK_GB)
    await m.rt.handlers(
        MinerEvent(
            reason=EventReason.JOB_CREATED,
            validator=m.world.validator.hotkey,
            data={
                "job_id": job["job_id"],
                "chute_id": chute_id,
                "method": job["method"],
                "disk_gb": JOB_DISK_GB,
                "exclude": [],
            },
        )
    )
    found = shape(m, job["job_id"])
    for d in await m.rt.inventory.find_deployments(job_id=job["job_id"]):
        await m.rt.deployer.undeploy(d.deployment_id, "test")
    m.world.validator.finish_job(job["job_id"])
    return found


@in_every_layout
async def test_the_autoscaler_places_a_job_with_its_ports_and_disk(miner: Miner) -> None:
    chute_id = job_chute(miner)
    handled = await by_event(miner, chute_id)
    assert handled["service_ports"] == EXPECTED_SERVICE_PORTS
    assert handled["port_env"] == ["CHUTES_PORT_TCP_2202", "CHUTES_PORT_UDP_9100"]
    assert handled["disk"] == ("37Gi", "37Gi", ["37Gi"])

    job = miner.world.validator.create_job(chute_id, disk_gb=JOB_DISK_GB)
    report = await autoscaler(miner, chute_id).run_round()
    assert [(o.placement.job_id, o.result) for o in report.outcomes] == [
        (job["job_id"], "deployed")
    ]
    assert shape(miner, job["job_id"]) == handled


@in_every_layout
async def test_a_job_placed_by_preemption_keeps_its_ports_and_disk(miner: Miner) -> None:
    chute_id = job_chute(miner)
    handled = await by_event(miner, chute_id)
    server_id = miner.server_for(miner.world.validator.world.chutes[chute_id])
    victim = await miner.rt.deployer.deploy(DeployRequest(chute_id, server_id))
    job = miner.world.validator.create_job(chute_id, disk_gb=JOB_DISK_GB)
    scaler = autoscaler(miner, chute_id)
    await miner.rt.sync.sync_all()  # the job's row, as a planning round would have synced it
    placement = Placement(chute_id, server_id, (), 1.0, "job", job_id=job["job_id"])
    outcome = await scaler._preempt(
        Preemption(placement, (victim.deployment.deployment_id,), 0.5, "job", "test")
    )
    assert (outcome.result, outcome.detail) == ("preempted and deployed", "")
    assert await miner.rt.inventory.get_deployment(victim.deployment.deployment_id) is None
    assert shape(miner, job["job_id"]) == handled


async def test_a_preemption_whose_victim_is_held_back_deploys_nothing(miner: Miner) -> None:
    """The victim's delete preflight vetoes: nothing is removed, nothing deployed (its GPUs
    are still taken), and the job goes back to the other miners."""
    cluster = split_runtime_cluster(miner.rt, [node.name for node in miner.world.fleet])
    chute_id = job_chute(miner)
    server_id = miner.server_for(miner.world.validator.world.chutes[chute_id])
    victim = (await miner.rt.deployer.deploy(DeployRequest(chute_id, server_id))).deployment
    cluster.vetoes[victim.deployment_id] = "cluster gpu-3 unreachable"
    job = miner.world.validator.create_job(chute_id, disk_gb=JOB_DISK_GB)
    await miner.rt.sync.sync_all()
    placement = Placement(chute_id, server_id, (), 1.0, "job", job_id=job["job_id"])
    outcome = await autoscaler(miner, chute_id)._preempt(
        Preemption(placement, (victim.deployment_id,), 0.5, "job", "test")
    )
    assert outcome.result == "deferred"
    assert outcome.detail.endswith(f"{victim.deployment_id}: cluster gpu-3 unreachable")
    assert await miner.rt.inventory.get_deployment(victim.deployment_id) is not None
    assert await miner.rt.inventory.find_deployments(job_id=job["job_id"]) == []
    released = miner.world.validator.world.jobs[job["job_id"]]
    assert released["miner_hotkey"] is None and released["status"] == "pending"
