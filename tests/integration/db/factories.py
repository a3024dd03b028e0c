"""Small builders of inventory rows for database tests."""

from __future__ import annotations

import uuid

from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server


def chute(chute_id: str = "chute-1", gpu_count: int = 1, **kw: object) -> Chute:
    fields: dict[str, object] = dict(
        chute_id=chute_id,
        validator="5Val",
        name=f"name-{chute_id}",
        image="u/img:1",
        code="print('hi')",
        filename="chute_file.py",
        ref_str="chute_file:chute",
        version="v1",
        supported_gpus=["h100"],
        gpu_count=gpu_count,
        chutes_version="0.3.61",
    )
    fields.update(kw)
    return Chute.model_validate(fields)


def server(server_id: str = "srv-1", gpus: int = 8, **kw: object) -> Server:
    fields: dict[str, object] = dict(
        server_id=server_id,
        validator="5Val",
        name=f"node-{server_id}",
        ip_address="10.0.0.1",
        labels={"gpu-short-ref": "h100"},
        gpu_count=gpus,
        cpu_per_gpu=4,
        memory_per_gpu=64,
        hourly_cost=2.0,
        status="Ready",
    )
    fields.update(kw)
    return Server.model_validate(fields)


def deployment(chute_id: str = "chute-1", server_id: str = "srv-1", **kw: object) -> Deployment:
    fields: dict[str, object] = dict(
        deployment_id=str(uuid.uuid4()),
        validator="5Val",
        chute_id=chute_id,
        server_id=server_id,
        version="v1",
        stub=True,
    )
    fields.update(kw)
    return Deployment.model_validate(fields)


async def fleet(inv: PgInventory, *, gpus: int = 8, verified: bool = True) -> None:
    """One chute and one server with `gpus` GPUs."""
    await inv.upsert_chute(chute())
    await inv.upsert_server(server(gpus=gpus))
    for i in range(gpus):
        await inv.upsert_gpu(
            Gpu(
                gpu_id=f"gpu{i:02d}",
                validator="5Val",
                server_id="srv-1",
                device_info={"uuid": f"gpu{i:02d}"},
                model_short_ref="h100",
                verified=verified,
            )
        )
