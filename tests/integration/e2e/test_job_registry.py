"""The server's TEE VM version, as the validator reports it on `/miner/servers/`, reaches the
Job: the official miner pulls from `registry.chutes.ai` from MTLS_REGISTRY_MIN_VERSION (1.4.0)
on, and through the node-local registry proxy below it."""

from __future__ import annotations

from gepetto_core.services.deployer import DeployRequest

from .conftest import Miner


async def _deploy_image(miner: Miner, chute_id: str, server_id: str) -> str:
    result = await miner.rt.deployer.deploy(DeployRequest(chute_id, server_id))
    selector = f"chutes/deployment-id={result.deployment.deployment_id}"
    [job] = miner.world.cluster.objects("jobs", "chutes", selector)
    image: str = job["spec"]["template"]["spec"]["containers"][0]["image"]
    await miner.rt.deployer.undeploy(result.deployment.deployment_id, "test")
    return image


async def test_the_validator_reported_vm_version_picks_the_registry(miner: Miner) -> None:
    chute = miner.launch_chute()
    server_id = miner.server_for(chute)
    reported = miner.world.validator.world.servers[server_id]
    proxy = f"{miner.world.validator.hotkey.lower()}.localregistry.chutes.ai:30500/"

    reported["version"] = "1.4.2"
    await miner.rt.sync.sync_all()
    assert miner.rt.sync.server_vm_version(miner.world.validator.hotkey, server_id) == "1.4.2"
    image = await _deploy_image(miner, chute["chute_id"], server_id)
    assert image.startswith("registry.chutes.ai/")

    reported["version"] = "1.3.9"
    await miner.rt.sync.sync_all()
    image = await _deploy_image(miner, chute["chute_id"], server_id)
    assert image.startswith(proxy)
