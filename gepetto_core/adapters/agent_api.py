"""HTTP client for the chutes agent on each server of the multi-cluster layout (`agent_api` in
`servers`; docs/multi-cluster.md#agents). gepetto only ever stops an agent: when the operator
deletes a server, as upstream's handler does, so the agent stops watching and the monitor drops
the cluster from its cache. Signed with the miner hotkey for purpose `monitoring`; 5 s to
connect and 30 s in all (upstream's values). Fails only with `AgentError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import aiohttp

from gepetto_core.adapters.cluster_source import StateSource
from gepetto_core.adapters.monitor_cache import redact
from gepetto_core.adapters.signing import Signer, signed_headers
from gepetto_core.errors import AgentError
from gepetto_core.models.inventory import Server

log = logging.getLogger(__name__)

MONITORING = "monitoring"
_DETAIL_LIMIT = 200


class HttpAgents:
    """`GET {agent_api}/monitor/stop` for any server's agent, on the process's HTTP session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        signer: Signer,
        *,
        connect_timeout: float = 5.0,
        total_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._signer = signer
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, connect=connect_timeout)
        self._clock = clock

    async def stop_monitoring(self, agent_api: str) -> None:
        """The agent stops its watchers, unregisters the cluster at the monitor (which clears
        its cache) and forgets the monitor. 409: the agent has no monitor to stop (it lost its
        state, or never started)."""
        url = f"{agent_api.rstrip('/')}/monitor/stop"
        headers = signed_headers(self._signer, purpose=MONITORING, clock=self._clock)
        try:
            async with self._session.get(url, headers=headers, timeout=self._timeout) as resp:
                if resp.status == 200:
                    return
                detail = (await resp.text())[:_DETAIL_LIMIT]
                text = f"agent {agent_api}: {resp.status} {detail}"
                raise AgentError(redact(text, ()), resp.status)
        except (aiohttp.ClientError, TimeoutError) as e:
            # a base URL with user:password@ keeps them out of the text
            text = f"agent {agent_api} unreachable: {type(e).__name__} {e}"
            raise AgentError(redact(text, ())) from e


class AgentRetirement:
    """A deleted server's monitoring, retired as upstream's handler does: the agent is asked to
    stop; when it cannot (409: it lost its state; or any error), the monitor's cache forgets
    the cluster through `source` (the state source's `clear_cluster`; nothing for a direct
    source). Never raises: the server is gone either way."""

    def __init__(self, agents: HttpAgents, source: Callable[[], StateSource]) -> None:
        self._agents = agents
        self._source = source

    async def retire(self, server: Server) -> None:
        if server.agent_api is None:
            return
        try:
            await self._agents.stop_monitoring(server.agent_api)
            log.info("server %s: its agent stopped monitoring", server.name)
            return
        except AgentError as e:
            log.warning("server %s: agent not stopped (%s); clearing its cache", server.name, e)
        await self._source().clear_cluster(server.name)
