"""``SandboxValidator``: the miner-facing validator API, its socket.io feed and a control
surface, served by one aiohttp app on a real TCP port."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from bittensor_wallet import Keypair

from gepetto_sandbox.validator import operations
from gepetto_sandbox.validator.api import MinerApi, RecordedRequest, error_middleware
from gepetto_sandbox.validator.catalog import Catalog, generate_catalog
from gepetto_sandbox.validator.control import add_control_routes
from gepetto_sandbox.validator.faults import Fault, FaultBook
from gepetto_sandbox.validator.sockets import SocketFeed
from gepetto_sandbox.validator.world import Envelope, ValidatorWorld

DEFAULT_VALIDATOR_URI = "//SandboxValidator"


class SandboxValidator:
    """A validator for tests and the demo. Use ``await start()`` → base URL, ``await stop()``.

    Everything it can be told to do is a method here and also an HTTP route under
    ``/_sandbox/`` (see ``control.py``)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
        launch_config_key: str = "launch-secret",
        miners: Sequence[str] = (),
        check_signatures: bool = True,
        validator_uri: str = DEFAULT_VALIDATOR_URI,
    ) -> None:
        self.hotkey: str = Keypair.create_from_uri(validator_uri).ss58_address
        self.world = ValidatorWorld(
            validator_hotkey=self.hotkey,
            clock=clock,
            launch_config_key=launch_config_key,
            rng=random.Random(seed),
        )
        self.faults = FaultBook()
        self.api = MinerApi(self.world, self.faults)
        self.api.check_signatures = check_signatures
        self.feed = SocketFeed(self.world, signatures_checked=lambda: self.api.check_signatures)
        for miner in miners:
            self.world.register_miner(miner)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def __repr__(self) -> str:
        return f"SandboxValidator({self.base_url or 'not started'!r})"

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[error_middleware], client_max_size=16 * 1024**2)
        self.api.add_routes(app)
        add_control_routes(app, self)
        self.feed.attach(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        self.base_url = f"http://{host}:{bound_port}"
        self.world.base_url = self.base_url
        self.feed.start()
        return self.base_url

    async def stop(self) -> None:
        await self.feed.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- inspection --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self.api.requests)

    @property
    def broadcasts(self) -> list[Envelope]:
        return list(self.world.broadcasts)

    def summary(self) -> dict[str, Any]:
        w = self.world
        return {
            "validator": self.hotkey,
            "chutes": len(w.chutes),
            "images": len(w.images),
            "instances": len(w.instances),
            "nodes": len(w.nodes),
            "jobs": len(w.jobs),
            "bounties": len(w.bounties),
            "rolling_updates": len(w.rolling_updates),
            "sockets": len(self.feed.latest_session),
        }

    # ---- setup -------------------------------------------------------------------------

    def load_catalog(self, catalog: Catalog) -> None:
        self.world.load_catalog(catalog)

    def load_generated(self, chutes: int, *, seed: int = 0) -> dict[str, Any]:
        self.world.load_catalog(generate_catalog(random.Random(seed), chutes, now=self.world.now()))
        return self.summary()

    def register_miner(self, hotkey: str) -> None:
        self.world.register_miner(hotkey)

    def blacklist(self, hotkey: str, reason: str) -> None:
        self.world.blacklisted[hotkey] = reason

    def add_server(self, hotkey: str, **kwargs: Any) -> dict[str, Any]:
        return self.world.add_server(hotkey, **kwargs)

    def set_target(self, chute_id: str, target: int) -> None:
        self.world.chute(chute_id)
        self.world.targets[chute_id] = target

    # ---- what the pod does (docs/protocol.md#launch-configs), as control calls ----------------

    def claim(self, config_id: str, gpus: list[str], host: str, port: int) -> dict[str, Any]:
        mappings = [
            {"internal_port": 8000, "external_port": port, "proto": "tcp"},
            {"internal_port": 8001, "external_port": port + 1, "proto": "tcp"},
        ]
        return self.world.claim(config_id, gpus, host, mappings)

    def verify(self, config_id: str) -> dict[str, Any]:
        return self.world.verify(config_id)

    def activate(self, config_id: str) -> dict[str, Any]:
        return self.world.activate(config_id)

    def bring_up(self, config_id: str, gpus: list[str], host: str, port: int) -> str:
        """created → verified → activated in one go; returns the instance id."""
        self.claim(config_id, gpus, host, port)
        self.verify(config_id)
        self.activate(config_id)
        instance_id: str = self.world.launch_configs[config_id]["instance_id"]
        return instance_id

    def delete_instance(self, instance_id: str) -> None:
        self.world.remove_instance(instance_id, reason="deleted by the validator")

    # ---- faults ------------------------------------------------------------------------

    def inject_fault(self, route: str, fault: Fault) -> None:
        self.faults.set(route, fault)

    def clear_faults(self, route: str | None = None) -> None:
        self.faults.clear(route)

    # ---- validator-side happenings ----------------------------------------------------

    def create_job(
        self, chute_id: str, *, method: str = "run", disk_gb: int = 10
    ) -> dict[str, Any]:
        return operations.create_job(self.world, chute_id, method=method, disk_gb=disk_gb)

    def finish_job(self, job_id: str) -> None:
        operations.finish_job(self.world, job_id)

    def create_bounty(self, chute_id: str) -> int:
        return operations.create_bounty(self.world, chute_id)

    def add_chute(self, chute: dict[str, Any]) -> dict[str, Any]:
        return operations.add_chute(self.world, chute)

    def update_chute(self, chute_id: str, *, code: str | None = None) -> str:
        return operations.update_chute(self.world, chute_id, code=code)

    def delete_chute(self, chute_id: str) -> None:
        operations.delete_chute(self.world, chute_id)

    def finish_rolling_update(self, chute_id: str) -> None:
        operations.finish_rolling_update(self.world, chute_id)

    def broadcast(
        self, reason: str, data: dict[str, Any], *, recipients: list[str] | None = None
    ) -> None:
        self.world.broadcast(reason, data, recipients=recipients)

    async def emit_raw(self, payload: Any) -> None:
        """Send any payload as ``miner_broadcast`` to every socket, valid or not."""
        await self.feed.emit_raw(payload)

    async def drop_sockets(self) -> None:
        await self.feed.drop_all()
