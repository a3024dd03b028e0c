"""A multi-cluster miner's monitoring as the official stack runs it: one agent per member
cluster feeding one monitor, which fills the Redis cache and its channels."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import BlockingConnectionPool, Redis

from gepetto_sandbox.multicluster.agent import AgentTimings, SandboxAgent
from gepetto_sandbox.multicluster.clusters import MultiClusterSandbox
from gepetto_sandbox.multicluster.monitor import Clock, SandboxMonitor, ServerNames, utc_now


class MonitoredClusters:
    """`clusters` watched by an agent each, feeding a `SandboxMonitor` on `redis_url`.

    `clock` is the monitor's clock and `agent_clock` the agents' (the official monitor stores
    the agent's heartbeat timestamp, so skew between them matters); both default to real UTC.
    `server_names`: the miner database's servers (with an agent_api); None: all are known.
    With `loops=False` neither the health checker, the reconciler nor the agents' heartbeat
    loops run on their own: tests call `monitor.check_health_once()`,
    `monitor.reconcile_once()` and `agent.heartbeat_once()` themselves."""

    def __init__(
        self,
        clusters: MultiClusterSandbox,
        redis_url: str,
        *,
        timings: AgentTimings | None = None,
        clock: Clock = utc_now,
        agent_clock: Clock | None = None,
        server_names: ServerNames | None = None,
        loops: bool = True,
        redis_connections: int = 16,
    ) -> None:
        self.clusters = clusters
        self.timings = timings or AgentTimings()
        # Agents write concurrently; a blocking pool makes them queue for a connection rather
        # than fail with "Too many connections" (the official monitor has one sync client).
        pool = BlockingConnectionPool.from_url(
            redis_url, decode_responses=True, max_connections=redis_connections, timeout=None
        )
        self.redis: Redis = Redis.from_pool(pool)
        self.monitor = SandboxMonitor(
            self.redis,
            clock=clock,
            heartbeat_interval=self.timings.heartbeat_interval,
            server_names=server_names,
            start_agent=self._start_agent,
        )
        heartbeat = self.timings.heartbeat_interval if loops else 10.0**9
        agent_timings = AgentTimings(**{**self.timings.__dict__, "heartbeat_interval": heartbeat})
        self.agents = {
            name: SandboxAgent(
                name,
                member.agent_kubeconfig(),
                self.monitor,
                timings=agent_timings,
                clock=agent_clock or clock,
            )
            for name, member in clusters.members.items()
        }
        self._loops = loops
        clusters.agent_front.agents.update(self.agents)  # their HTTP API (`agent_http.py`)
        clusters.loss_hooks.append(self._agent_dies)
        clusters.recovery_hooks.append(self._agent_returns)

    async def start(self, concurrency: int = 16) -> None:
        """Every agent registers (`POST /monitor/start`) and its watchers are listening; then
        the monitor's loops run."""
        gate = asyncio.Semaphore(concurrency)

        async def start_one(agent: SandboxAgent) -> None:
            async with gate:
                code = await agent.start(register=True)
                if code != 200:
                    raise RuntimeError(f"agent {agent.name} did not start: {code}")
                await agent.watching()

        outcomes = await asyncio.gather(
            *(start_one(a) for a in self.agents.values()), return_exceptions=True
        )  # every start has finished, failed or not, before anything is reported
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]
        if self._loops:
            self.monitor.start()

    async def stop(self) -> None:
        await self.monitor.stop()
        for name, agent in self.agents.items():
            await agent.close()
            if self.clusters.agent_front.agents.get(name) is agent:
                del self.clusters.agent_front.agents[name]
        with contextlib.suppress(ValueError):
            self.clusters.loss_hooks.remove(self._agent_dies)
        with contextlib.suppress(ValueError):
            self.clusters.recovery_hooks.remove(self._agent_returns)
        await self.redis.aclose()

    async def __aenter__(self) -> MonitoredClusters:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def heartbeat_all(self) -> dict[str, int]:
        """One heartbeat from every agent (for tests running without loops)."""
        return {name: await a.heartbeat_once() for name, a in self.agents.items()}

    async def _start_agent(self, name: str) -> int:
        agent = self.agents.get(name)
        return 404 if agent is None else await agent.start(register=True)

    async def _agent_dies(self, name: str) -> None:
        await self.agents[name].kill()

    async def _agent_returns(self, name: str) -> None:
        # the agent pod comes back and auto-starts from its persisted control-plane URL
        await self.agents[name].start(register=False)
