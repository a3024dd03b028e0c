"""The miner's inventory tables (`chutes`, `servers`, `gpus`, `deployments`) on asyncpg.

Rows come back as the pydantic models of `gepetto_core.models.inventory`. The one operation
with a concurrency contract is `create_deployment`: the stub row and the GPU claim are one
transaction that claims exactly `gpu_count` verified free GPUs or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel

from gepetto_core.adapters.pg import translate_errors
from gepetto_core.errors import InsufficientGpusError
from gepetto_core.models.inventory import Chute, Deployment, Gpu, Server

_M = TypeVar("_M", bound=BaseModel)

# Columns gepetto may change on a deployment after it was created.
_DEPLOYMENT_MUTABLE = frozenset(
    {
        "instance_id",
        "host",
        "port",
        "active",
        "verified_at",
        "activated_at",
        "stub",
        "config_id",
        "job_id",
        "version",
    }
)


def _rows(model: type[_M], records: Iterable[asyncpg.Record]) -> list[_M]:
    return [model.model_validate(dict(r)) for r in records]


def _upsert_sql(table: str, key: str, columns: Sequence[str]) -> str:
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


_CHUTE_COLUMNS = (
    "chute_id",
    "validator",
    "name",
    "image",
    "code",
    "filename",
    "ref_str",
    "version",
    "supported_gpus",
    "gpu_count",
    "ban_reason",
    "chutes_version",
    "preemptible",
    "tee",
)
_SERVER_COLUMNS = (
    "server_id",
    "validator",
    "name",
    "ip_address",
    "agent_api",
    "verification_port",
    "status",
    "labels",
    "seed",
    "gpu_count",
    "cpu_per_gpu",
    "memory_per_gpu",
    "hourly_cost",
    "locked",
    "kubeconfig",
    "is_tee",
)
_GPU_COLUMNS = (
    "gpu_id",
    "validator",
    "server_id",
    "device_info",
    "model_short_ref",
    "verified",
)
_DEPLOYMENT_COLUMNS = (
    "deployment_id",
    "instance_id",
    "validator",
    "host",
    "port",
    "chute_id",
    "server_id",
    "version",
    "active",
    "verified_at",
    "activated_at",
    "stub",
    "job_id",
    "config_id",
    "preemptible",
)


class PgInventory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # --- chutes ---------------------------------------------------------------------------
    async def upsert_chute(self, chute: Chute) -> None:
        values = [getattr(chute, c) for c in _CHUTE_COLUMNS]
        async with translate_errors("saving a chute"):
            await self._pool.execute(
                _upsert_sql("chutes", "chute_id", _CHUTE_COLUMNS).replace(
                    "DO UPDATE SET", "DO UPDATE SET updated_at = now(),"
                ),
                *values,
            )

    async def get_chute(self, chute_id: str) -> Chute | None:
        async with translate_errors("reading a chute"):
            row = await self._pool.fetchrow("SELECT * FROM chutes WHERE chute_id = $1", chute_id)
        return Chute.model_validate(dict(row)) if row else None

    async def list_chutes(self) -> list[Chute]:
        async with translate_errors("listing chutes"):
            return _rows(Chute, await self._pool.fetch("SELECT * FROM chutes ORDER BY name"))

    async def delete_chute(self, chute_id: str) -> bool:
        """Deletes the chute; its deployments go with it (ON DELETE CASCADE)."""
        async with translate_errors("deleting a chute"):
            result = await self._pool.execute("DELETE FROM chutes WHERE chute_id = $1", chute_id)
        return bool(result.endswith(" 1"))

    async def set_chute_image(
        self, chute_ids: list[str], image: str, chutes_version: str | None
    ) -> int:
        """The image_updated event: a rebuilt image for these chutes. Returns rows changed."""
        async with translate_errors("updating chute images"):
            result = await self._pool.execute(
                "UPDATE chutes SET image = $2, chutes_version = COALESCE($3, chutes_version), "
                "updated_at = now() WHERE chute_id = ANY($1::varchar[])",
                chute_ids,
                image,
                chutes_version,
            )
        return int(result.rsplit(" ", 1)[-1])

    # --- servers and GPUs -------------------------------------------------------------------
    async def upsert_server(self, server: Server) -> None:
        values = [getattr(server, c) for c in _SERVER_COLUMNS]
        async with translate_errors("saving a server"):
            await self._pool.execute(_upsert_sql("servers", "server_id", _SERVER_COLUMNS), *values)

    async def get_server(self, server_id: str) -> Server | None:
        async with translate_errors("reading a server"):
            row = await self._pool.fetchrow("SELECT * FROM servers WHERE server_id = $1", server_id)
        return Server.model_validate(dict(row)) if row else None

    async def list_servers(self) -> list[Server]:
        async with translate_errors("listing servers"):
            return _rows(Server, await self._pool.fetch("SELECT * FROM servers ORDER BY name"))

    async def set_server_locked(self, server_id: str, locked: bool) -> bool:
        async with translate_errors("locking a server"):
            result = await self._pool.execute(
                "UPDATE servers SET locked = $2 WHERE server_id = $1", server_id, locked
            )
        return bool(result.endswith(" 1"))

    async def delete_server(self, server_id: str) -> bool:
        """Deletes the server with its GPUs and deployment rows (ON DELETE CASCADE)."""
        async with translate_errors("deleting a server"):
            result = await self._pool.execute("DELETE FROM servers WHERE server_id = $1", server_id)
        return bool(result.endswith(" 1"))

    async def upsert_gpu(self, gpu: Gpu) -> None:
        """Inserts or refreshes a GPU; never touches its allocation (`deployment_id`)."""
        values = [getattr(gpu, c) for c in _GPU_COLUMNS]
        async with translate_errors("saving a GPU"):
            await self._pool.execute(_upsert_sql("gpus", "gpu_id", _GPU_COLUMNS), *values)

    async def set_gpu_verified(self, gpu_id: str, verified: bool) -> bool:
        async with translate_errors("verifying a GPU"):
            result = await self._pool.execute(
                "UPDATE gpus SET verified = $2 WHERE gpu_id = $1", gpu_id, verified
            )
        return bool(result.endswith(" 1"))

    async def delete_gpu(self, gpu_id: str) -> bool:
        async with translate_errors("deleting a GPU"):
            result = await self._pool.execute("DELETE FROM gpus WHERE gpu_id = $1", gpu_id)
        return bool(result.endswith(" 1"))

    async def list_gpus(self, server_id: str | None = None) -> list[Gpu]:
        async with translate_errors("listing GPUs"):
            if server_id is None:
                records = await self._pool.fetch("SELECT * FROM gpus ORDER BY server_id, gpu_id")
            else:
                records = await self._pool.fetch(
                    "SELECT * FROM gpus WHERE server_id = $1 ORDER BY gpu_id", server_id
                )
        return _rows(Gpu, records)

    # --- deployments --------------------------------------------------------------------------
    async def create_deployment(self, deployment: Deployment, gpu_count: int) -> list[Gpu]:
        """Insert the deployment (normally a stub) and claim `gpu_count` of its server's verified
        free GPUs, all in one transaction. Claims exactly that many or nothing: when too few are
        free, nothing is written and InsufficientGpusError is raised."""
        if gpu_count < 1:
            raise InsufficientGpusError("a deployment needs at least one GPU")
        values = [getattr(deployment, c) for c in _DEPLOYMENT_COLUMNS]
        placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        async with (
            translate_errors("creating a deployment"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            await conn.execute(
                f"INSERT INTO deployments ({', '.join(_DEPLOYMENT_COLUMNS)}) "
                f"VALUES ({placeholders})",
                *values,
            )
            # SKIP LOCKED: concurrent claims take different GPUs instead of queueing on
            # the same rows; the re-check of deployment_id IS NULL guards the UPDATE.
            claimed = await conn.fetch(
                """
                WITH free AS (
                    SELECT gpu_id FROM gpus
                    WHERE server_id = $1 AND verified AND deployment_id IS NULL
                    ORDER BY gpu_id
                    LIMIT $3
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE gpus SET deployment_id = $2
                FROM free
                WHERE gpus.gpu_id = free.gpu_id AND gpus.deployment_id IS NULL
                RETURNING gpus.*
                """,
                deployment.server_id,
                deployment.deployment_id,
                gpu_count,
            )
            if len(claimed) != gpu_count:
                raise _ClaimShortfall(len(claimed))
        return _rows(Gpu, claimed)

    async def get_deployment(self, deployment_id: str) -> Deployment | None:
        async with translate_errors("reading a deployment"):
            row = await self._pool.fetchrow(
                "SELECT * FROM deployments WHERE deployment_id = $1", deployment_id
            )
        return Deployment.model_validate(dict(row)) if row else None

    async def list_deployments(self, server_id: str | None = None) -> list[Deployment]:
        async with translate_errors("listing deployments"):
            if server_id is None:
                records = await self._pool.fetch("SELECT * FROM deployments ORDER BY created_at")
            else:
                records = await self._pool.fetch(
                    "SELECT * FROM deployments WHERE server_id = $1 ORDER BY created_at",
                    server_id,
                )
        return _rows(Deployment, records)

    async def find_deployments(
        self,
        *,
        validator: str | None = None,
        chute_id: str | None = None,
        instance_id: str | None = None,
        config_id: str | None = None,
        job_id: str | None = None,
    ) -> list[Deployment]:
        """Deployments matching every given field (events name them by these ids)."""
        filters = {
            "validator": validator,
            "chute_id": chute_id,
            "instance_id": instance_id,
            "config_id": config_id,
            "job_id": job_id,
        }
        given = {k: v for k, v in filters.items() if v is not None}
        if not given:
            raise ValueError("find_deployments needs at least one field")
        where = " AND ".join(f"{k} = ${i}" for i, k in enumerate(given, start=1))
        async with translate_errors("finding deployments"):
            records = await self._pool.fetch(
                f"SELECT * FROM deployments WHERE {where} ORDER BY created_at", *given.values()
            )
        return _rows(Deployment, records)

    async def update_deployment(self, deployment_id: str, **changes: Any) -> Deployment | None:
        unknown = set(changes) - _DEPLOYMENT_MUTABLE
        if unknown:
            raise ValueError(f"not updatable on a deployment: {sorted(unknown)}")
        if not changes:
            return await self.get_deployment(deployment_id)
        columns = list(changes)
        assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
        async with translate_errors("updating a deployment"):
            row = await self._pool.fetchrow(
                f"UPDATE deployments SET {assignments} WHERE deployment_id = $1 RETURNING *",
                deployment_id,
                *(changes[c] for c in columns),
            )
        return Deployment.model_validate(dict(row)) if row else None

    async def delete_deployment(self, deployment_id: str) -> Deployment | None:
        """Remove the row; its GPUs become free (FK ON DELETE SET NULL). Returns the removed row,
        or None when it was already gone (a second undeploy is a no-op)."""
        async with translate_errors("deleting a deployment"):
            row = await self._pool.fetchrow(
                "DELETE FROM deployments WHERE deployment_id = $1 RETURNING *", deployment_id
            )
        return Deployment.model_validate(dict(row)) if row else None


class _ClaimShortfall(InsufficientGpusError):
    def __init__(self, claimed: int) -> None:
        super().__init__(
            f"not enough verified free GPUs on the server (could claim {claimed}); nothing claimed"
        )
