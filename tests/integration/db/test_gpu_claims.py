"""The GPU claim contract: exactly gpu_count verified free GPUs, or nothing, under concurrency."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest

from gepetto_core.adapters.pg_inventory import PgInventory
from gepetto_core.errors import InsufficientGpusError
from gepetto_core.models.inventory import Gpu

from .factories import deployment, fleet


async def test_fifty_concurrent_claims_never_over_allocate(pool: asyncpg.Pool) -> None:
    inv = PgInventory(pool)
    await fleet(inv, gpus=8)
    # 50 claims of 1, 2 or 3 GPUs race for 8 GPUs on one server.
    sizes = [1 + i % 3 for i in range(50)]
    deployments = [deployment() for _ in sizes]

    async def claim(d_index: int) -> list[Gpu] | None:
        try:
            return await inv.create_deployment(deployments[d_index], sizes[d_index])
        except InsufficientGpusError:
            return None

    results = await asyncio.gather(*(claim(i) for i in range(50)))

    winners = [(i, r) for i, r in enumerate(results) if r is not None]
    assert winners, "some claims must succeed"
    # every winner got exactly what it asked for
    for i, gpus in winners:
        assert len(gpus) == sizes[i]
    # no GPU is held twice, and the database agrees with what the winners were told
    held = Counter(g.gpu_id for _, gpus in winners for g in gpus)
    assert all(count == 1 for count in held.values())
    assert sum(sizes[i] for i, _ in winners) <= 8
    db_gpus = await inv.list_gpus("srv-1")
    assert {g.gpu_id: g.deployment_id for g in db_gpus if g.deployment_id} == {
        g.gpu_id: deployments[i].deployment_id for i, gpus in winners for g in gpus
    }
    # losers left no deployment row behind
    rows = {d.deployment_id for d in await inv.list_deployments()}
    assert rows == {deployments[i].deployment_id for i, _ in winners}


async def test_a_claim_that_cannot_be_met_in_full_claims_nothing(pool: asyncpg.Pool) -> None:
    inv = PgInventory(pool)
    await fleet(inv, gpus=4)
    first = await inv.create_deployment(deployment(), 3)
    assert len(first) == 3
    with pytest.raises(InsufficientGpusError, match="nothing claimed"):
        await inv.create_deployment(deployment(), 2)
    free = [g for g in await inv.list_gpus("srv-1") if g.deployment_id is None]
    assert len(free) == 1
    assert len(await inv.list_deployments()) == 1


async def test_unverified_gpus_are_never_claimed(pool: asyncpg.Pool) -> None:
    inv = PgInventory(pool)
    await fleet(inv, gpus=2, verified=False)
    with pytest.raises(InsufficientGpusError):
        await inv.create_deployment(deployment(), 1)
    await inv.set_gpu_verified("gpu00", True)
    claimed = await inv.create_deployment(deployment(), 1)
    assert [g.gpu_id for g in claimed] == ["gpu00"]


async def test_deleting_a_deployment_frees_its_gpus_and_is_idempotent(pool: asyncpg.Pool) -> None:
    inv = PgInventory(pool)
    await fleet(inv, gpus=2)
    d = deployment()
    await inv.create_deployment(d, 2)
    removed = await inv.delete_deployment(d.deployment_id)
    assert removed is not None and removed.deployment_id == d.deployment_id
    assert all(g.deployment_id is None for g in await inv.list_gpus())
    assert await inv.delete_deployment(d.deployment_id) is None
