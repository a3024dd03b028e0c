"""Clusters going unreachable and coming back, in the alert channel (the reconcile report's
health, delivered by the alert service like failed deploys and recycles): one message per
change, grouped when several go at once; and the Slack `recycle --dry-run` with the delete
preflight's verdict. The services run on a Cluster double posing as one cluster per server
over the real cluster sandbox."""

from __future__ import annotations

from bot.alert_service import AlertService
from gepetto_core.services.deployer import DeployRequest
from tests.integration.cluster_double import SplitCluster, split_runtime_cluster

from .conftest import ALERTS, World, eventually, text_of


def split(world: World) -> SplitCluster:
    return split_runtime_cluster(world.rt, [node.name for node in world.miner.fleet])


def alert_texts(world: World) -> list[str]:
    return [
        str(m.get("text"))
        for (channel, _), m in sorted(world.slack.messages.items(), key=lambda kv: kv[0][1])
        if channel == ALERTS and not m.get("thread_ts")
    ]


async def reconcile(world: World) -> None:
    """One pass of the reconcile loop and its observer, as `serve` runs them."""
    await world.bot.alerts.on_reconcile(await world.rt.reconciler.run_once())
    await world.settle()


async def test_clusters_going_and_coming_back_alert_once_per_change(world: World) -> None:
    cluster = split(world)
    names = sorted(cluster.names)
    await reconcile(world)
    assert alert_texts(world) == []  # the first read: nothing was ever seen down

    down = names[:3]
    for name in down:
        cluster.down[name] = "timed out"
    await reconcile(world)
    await reconcile(world)  # still down: nothing new
    assert alert_texts(world) == [f"3 clusters unreachable: {', '.join(down)} — timed out"]

    cluster.down.clear()
    await reconcile(world)
    await reconcile(world)
    assert alert_texts(world)[1:] == [f"3 clusters reachable again: {', '.join(down)}"]

    cluster.down[names[3]] = "connection refused"
    await reconcile(world)
    assert alert_texts(world)[2:] == [f"cluster {names[3]} unreachable — connection refused"]


async def test_a_restart_neither_repeats_nor_forgets(world: World) -> None:
    """The clusters down are kept as open alerts: a new process (a restart, a new leader) does
    not announce them again, and does say when they come back."""
    cluster = split(world)
    name = sorted(cluster.names)[0]
    cluster.down[name] = "timed out"
    await reconcile(world)
    record = await world.rt.state.get_alert(f"cluster-down:{name}")
    assert record is not None and record.state == "open"

    ctx = world.bot.ctx
    restarted = AlertService(world.rt.state, world.rt.inventory, ctx.outbox, ctx.pending, ALERTS)
    await restarted.on_reconcile(await world.rt.reconciler.run_once())
    await world.settle()
    assert alert_texts(world) == [f"cluster {name} unreachable — timed out"]

    cluster.down.clear()
    await restarted.on_reconcile(await world.rt.reconciler.run_once())
    await world.settle()
    assert alert_texts(world)[1:] == [f"cluster {name} reachable again"]
    record = await world.rt.state.get_alert(f"cluster-down:{name}")
    assert record is not None and record.state == "resolved"


async def test_slack_recycle_dry_run_shows_the_deferred_removal(world: World) -> None:
    cluster = split(world)
    chute = world.launch_chute()
    node = world.server_for(chute)
    made = await world.rt.deployer.deploy(DeployRequest(chute["chute_id"], node.uid))
    deployment_id = made.deployment.deployment_id
    await world.rt.cluster.undeploy(deployment_id, wait_seconds=30)  # behind gepetto's back
    cluster.vetoes[deployment_id] = f"cluster {node.name} unreachable"

    _, _, rid = await world.command("recycle --dry-run")
    shown = text_of(await world.answer(rid))
    assert deployment_id in shown
    assert f"deferred: cluster {node.name} unreachable" in shown

    async def still_there() -> bool:
        return await world.rt.inventory.get_deployment(deployment_id) is not None

    assert await eventually(still_there)
