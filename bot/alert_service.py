"""Alerts to the configured channel: the I/O around the pure rules of ``bot.alerts``.

Inputs: reconcile reports (failed deploys, recycle removals, clusters unreachable or back),
autoscaler rounds (a digest), and the bot's own deploys (failure, or success that resolves an
open alert). Each decision is taken under one lock with the known alerts loaded from
``gepetto_alerts``, so two reports at once cannot both post the same alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.action_ids import (
    ALERT_BACKOFF_ACTION_ID,
    ALERT_RETRY_ACTION_ID,
    ALERT_UNDEPLOY_ACTION_ID,
)
from bot.alerts import (
    AlertEffect,
    AlertPolicy,
    DeployFailure,
    DigestBuffer,
    JoinStorm,
    NewAlert,
    RepeatAlert,
    StartStorm,
    plan_failure_alerts,
    summarize_storm,
)
from bot.approvals import ALERT_TTL, PendingActions
from bot.cards import (
    build_cluster_card,
    build_digest_card,
    build_failure_alert,
    build_recycle_card,
    build_storm_card,
)
from bot.outbox import SlackOutbox, SlackSendError
from gepetto_core.clock import utcnow
from gepetto_core.models.cluster import ClusterHealth
from gepetto_core.models.inventory import Chute, Server
from gepetto_core.models.state import AlertRecord, LedgerEntry
from gepetto_core.scheduling.cluster_alerts import ClusterAlert, cluster_health_alerts
from gepetto_core.scheduling.reconcile_actions import DeleteChute, RemoveDeployment, RemoveServer
from gepetto_core.services.autoscaler import RoundReport
from gepetto_core.services.reconcile_service import ReconcileReport

log = logging.getLogger(__name__)
ALERTS_ACTOR = "gepetto-alerts"
MAX_STORM_PAYLOADS = 100
CLUSTER_DOWN = "cluster-down:"  # + cluster name: the open alert of an unreachable cluster


class AlertStore(Protocol):
    """Posted alerts and the failure ledger (`PgState` in the process)."""

    async def get_alert(self, alert_key: str) -> AlertRecord | None: ...

    async def list_alerts(
        self, *, state: str | None = None, since: datetime | None = None
    ) -> list[AlertRecord]: ...

    async def save_alert(self, alert: AlertRecord) -> None: ...

    async def list_ledger(self, since: datetime | None = None) -> list[LedgerEntry]: ...


class FleetInventory(Protocol):
    """The chutes and servers alerts name (`PgInventory` in the process)."""

    async def list_chutes(self) -> list[Chute]: ...

    async def list_servers(self) -> list[Server]: ...


class AlertService:
    def __init__(
        self,
        state: AlertStore,
        inventory: FleetInventory,
        outbox: SlackOutbox,
        pending: PendingActions,
        channel: str | None,
        *,
        policy: AlertPolicy | None = None,
        failure_window: timedelta = timedelta(minutes=16),
        digest_interval: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._state = state
        self._inventory = inventory
        self._outbox = outbox
        self._pending = pending
        self.channel = channel
        self.policy = policy or AlertPolicy()
        self._failure_window = failure_window
        self._clock = clock
        self._lock = asyncio.Lock()
        self.digest = DigestBuffer(interval=digest_interval)
        # cluster name -> unreachable at the last pass; loaded from the open alerts on first
        # use (no "back" alert for a cluster never seen down)
        self._clusters_down: dict[str, bool] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.channel)

    # -- failed deploys -------------------------------------------------------------------

    async def deploy_failures(self, failures: Sequence[DeployFailure]) -> list[AlertEffect]:
        if not self.enabled or not failures:
            return []
        async with self._lock:
            now = self._clock()
            since = now - max(self.policy.reopen_after, self.policy.storm_window)
            known = {a.alert_key: a for a in await self._state.list_alerts(since=since)}
            effects = plan_failure_alerts(failures, known, now, self.policy)
            for effect in effects:
                try:
                    await self._apply(effect, known, now)
                except SlackSendError as e:
                    log.warning("alert not delivered: %s", e)
            return effects

    async def _buttons(self, failure: DeployFailure) -> dict[str, str]:
        async def offer(verb: str, argv: list[str] | None, policy: str) -> str:
            arguments: dict[str, Any] = {"alert_key": failure.key}
            if argv is not None:
                arguments["argv"] = argv
            action = await self._pending.create(
                verb=verb,
                arguments=arguments,
                requested_by=ALERTS_ACTOR,
                policy=policy,
                ttl=ALERT_TTL,
            )
            return action.action_id

        buttons = {
            ALERT_RETRY_ACTION_ID: await offer(
                "deploy", ["deploy", "-c", failure.chute_id, "-s", failure.server_id], "confirm"
            ),
            ALERT_BACKOFF_ACTION_ID: await offer("alert backoff", None, "none"),
        }
        if failure.deployment_id:
            buttons[ALERT_UNDEPLOY_ACTION_ID] = await offer(
                "undeploy", ["undeploy", "-i", failure.deployment_id], "confirm"
            )
        return buttons

    async def _post_failure(
        self, failure: DeployFailure, now: datetime, thread_ts: str | None, storm: str | None
    ) -> AlertRecord:
        assert self.channel is not None
        buttons = await self._buttons(failure)
        card = build_failure_alert(failure.to_payload(), occurrences=1, buttons=buttons)
        channel, ts = await self._outbox.post(self.channel, card, thread_ts=thread_ts)
        payload = {**failure.to_payload(), "buttons": buttons, "storm": storm}
        record = AlertRecord(
            alert_key=failure.key,
            channel=channel,
            message_ts=ts,
            thread_ts=thread_ts,
            state="open",
            occurrences=1,
            first_at=now,
            last_at=now,
            payload=payload,
        )
        await self._state.save_alert(record)
        return record

    async def _move_into_thread(
        self, record: AlertRecord, thread_ts: str, storm: str
    ) -> AlertRecord:
        assert self.channel is not None
        if record.channel and record.message_ts:
            await self._outbox.delete(record.channel, record.message_ts)
        payload = {**record.payload, "storm": storm}
        card = build_failure_alert(
            payload, occurrences=record.occurrences, buttons=payload.get("buttons", {})
        )
        channel, ts = await self._outbox.post(self.channel, card, thread_ts=thread_ts)
        moved = record.model_copy(
            update={
                "channel": channel,
                "message_ts": ts,
                "thread_ts": thread_ts,
                "payload": payload,
            }
        )
        await self._state.save_alert(moved)
        return moved

    async def _apply(
        self, effect: AlertEffect, known: dict[str, AlertRecord], now: datetime
    ) -> None:
        """Carry out one effect of the alert plan; `known` follows what it posted or changed."""
        assert self.channel is not None
        if isinstance(effect, NewAlert):
            known[effect.failure.key] = await self._post_failure(effect.failure, now, None, None)
        elif isinstance(effect, RepeatAlert):
            await self._repeat(effect, known, now)
        elif isinstance(effect, StartStorm):
            await self._start_storm(effect, known, now)
        elif isinstance(effect, JoinStorm):
            await self._join_storm(effect, known, now)

    async def _repeat(
        self, effect: RepeatAlert, known: dict[str, AlertRecord], now: datetime
    ) -> None:
        """The same failure again: its count goes up and its message is edited."""
        old = known[effect.key]
        payload = {**old.payload, **effect.failure.to_payload()}
        payload["buttons"] = old.payload.get("buttons", {})
        payload["storm"] = old.payload.get("storm")
        record = old.model_copy(
            update={"occurrences": effect.occurrences, "last_at": now, "payload": payload}
        )
        await self._state.save_alert(record)
        known[effect.key] = record
        if record.channel and record.message_ts:
            card = build_failure_alert(
                payload, occurrences=record.occurrences, buttons=payload["buttons"]
            )
            self._outbox.update(record.channel, record.message_ts, card)

    async def _start_storm(
        self, effect: StartStorm, known: dict[str, AlertRecord], now: datetime
    ) -> None:
        """Failures enough for a storm: one message for it, the earlier alerts move into its
        thread and the new ones are posted there."""
        assert self.channel is not None
        earlier = [known[k].payload for k in effect.earlier if k in known]
        payloads = [*earlier, *(f.to_payload() for f in effect.failures)]
        started = min([now, *(known[k].first_at for k in effect.earlier if k in known)])
        card = build_storm_card(summarize_storm(payloads), started)
        channel, ts = await self._outbox.post(self.channel, card)
        storm = AlertRecord(
            alert_key=effect.key,
            channel=channel,
            message_ts=ts,
            state="open",
            occurrences=len(payloads),
            first_at=started,
            last_at=now,
            payload={"kind": "storm", "failures": payloads[:MAX_STORM_PAYLOADS]},
        )
        await self._state.save_alert(storm)
        known[effect.key] = storm
        for key in effect.earlier:  # one message for the storm: earlier alerts move in
            if key in known:
                known[key] = await self._move_into_thread(known[key], ts, effect.key)
        for failure in effect.failures:
            known[failure.key] = await self._post_failure(failure, now, ts, effect.key)

    async def _join_storm(
        self, effect: JoinStorm, known: dict[str, AlertRecord], now: datetime
    ) -> None:
        """One more failure of an open storm: the storm's message is edited, the failure is
        posted in its thread."""
        storm = known[effect.key]
        payloads = [*storm.payload.get("failures", []), effect.failure.to_payload()]
        storm = storm.model_copy(
            update={
                "occurrences": storm.occurrences + 1,
                "last_at": now,
                "payload": {"kind": "storm", "failures": payloads[-MAX_STORM_PAYLOADS:]},
            }
        )
        await self._state.save_alert(storm)
        known[effect.key] = storm
        if storm.channel and storm.message_ts:
            summary = summarize_storm(payloads)
            summary = type(summary)(
                storm.occurrences, summary.chutes, summary.servers, summary.suspects
            )
            self._outbox.update(
                storm.channel, storm.message_ts, build_storm_card(summary, storm.first_at)
            )
        known[effect.failure.key] = await self._post_failure(
            effect.failure, now, storm.message_ts, effect.key
        )

    async def set_state(self, alert_key: str, state: str, note: str) -> bool:
        """Resolve or acknowledge an alert: its message is edited in place (no new post)."""
        async with self._lock:
            record = await self._state.get_alert(alert_key)
            if record is None or record.state == state or record.state == "resolved":
                return False
            record = record.model_copy(update={"state": state, "last_at": self._clock()})
            await self._state.save_alert(record)
        if record.channel and record.message_ts:
            card = build_failure_alert(
                record.payload,
                occurrences=record.occurrences,
                buttons={},
                state=state,
                state_note=note,
            )
            await self._outbox.update_now(record.channel, record.message_ts, card)
        return True

    # -- reconcile reports ----------------------------------------------------------------

    async def on_reconcile(self, report: ReconcileReport) -> None:
        """The reconcile loop's callback: clusters that became unreachable or came back alert;
        failed deploys alert; other removals (servers and chutes too) are summarized."""
        if not self.enabled or not report.applied:
            return
        await self.cluster_health(report.health)
        removals = [  # a removal the delete preflight deferred did nothing: no news yet
            (r.action, r.ok, r.logs)
            for r in report.results
            if isinstance(r.action, RemoveDeployment) and r.deferred is None
        ]
        gone = [  # whole servers and chutes this pass removed (the detail names them)
            (r.detail, r.action.reason)
            for r in report.results
            if r.ok and isinstance(r.action, RemoveServer | DeleteChute)
        ]
        if not removals and not gone:
            return
        now = self._clock()
        ledger = {
            e.deployment_id: e for e in await self._state.list_ledger(now - timedelta(days=1))
        }
        chutes = {c.chute_id: c for c in await self._inventory.list_chutes()}
        servers = {s.server_id: s for s in await self._inventory.list_servers()}
        failures: list[DeployFailure] = []
        other: list[tuple[str, str]] = list(gone)
        for action, ok, logs in removals:
            assert isinstance(action, RemoveDeployment)
            entry = ledger.get(action.deployment_id)
            young = entry is not None and now - entry.created_at <= self._failure_window
            if ok and action.end == "failure" and entry is not None and young:
                chute, server = chutes.get(entry.chute_id), servers.get(entry.server_id)
                failures.append(
                    DeployFailure(
                        chute_id=entry.chute_id,
                        server_id=entry.server_id,
                        reason=action.reason,
                        at=now,
                        chute_name=chute.name if chute else None,
                        server_name=server.name if server else None,
                        deployment_id=None,  # removed by this pass: nothing left to undeploy
                        log_lines=logs,
                    )
                )
            else:
                other.append((f"deployment {action.deployment_id}", action.reason))
        await self.deploy_failures(failures)
        if other and self.channel:
            failed = sum(1 for r in report.results if not r.ok)
            try:
                await self._outbox.post(self.channel, build_recycle_card(other, failed))
            except SlackSendError as e:
                log.warning("recycle summary not delivered: %s", e)

    async def cluster_health(self, health: Sequence[ClusterHealth]) -> list[ClusterAlert]:
        """One message per kind of change since the last pass (`scheduling.cluster_alerts`):
        many clusters going at once are one message. Which clusters are down is kept as
        open `cluster-down:<name>` alerts, so a restart (or a new leader) neither repeats an
        "unreachable" nor forgets to say "back"."""
        if not self.enabled or not health:
            return []
        async with self._lock:
            if self._clusters_down is None:
                self._clusters_down = await self._clusters_seen_down()
            alerts, self._clusters_down = cluster_health_alerts(self._clusters_down, health)
            for alert in alerts:
                await self._post_cluster_alert(alert)
        return alerts

    async def _clusters_seen_down(self) -> dict[str, bool]:
        records = await self._state.list_alerts(state="open")
        return {
            r.alert_key.removeprefix(CLUSTER_DOWN): True
            for r in records
            if r.alert_key.startswith(CLUSTER_DOWN)
        }

    async def _post_cluster_alert(self, alert: ClusterAlert) -> None:
        assert self.channel is not None
        log.warning("cluster alert: %s", alert.text)
        channel: str | None = None
        ts: str | None = None
        try:
            channel, ts = await self._outbox.post(self.channel, build_cluster_card(alert))
        except SlackSendError as e:
            log.warning("cluster alert not delivered: %s", e)
        now = self._clock()
        for name, reason in alert.clusters:
            old = await self._state.get_alert(CLUSTER_DOWN + name)
            if alert.kind == "back":
                if old is not None:
                    await self._state.save_alert(
                        old.model_copy(update={"state": "resolved", "last_at": now})
                    )
                continue
            await self._state.save_alert(
                AlertRecord(
                    alert_key=CLUSTER_DOWN + name,
                    channel=channel,
                    message_ts=ts,
                    occurrences=old.occurrences + 1 if old is not None else 1,
                    first_at=now,
                    last_at=now,
                    payload={"kind": "cluster", "cluster": name, "reason": reason},
                )
            )

    # -- autoscaler digest ----------------------------------------------------------------

    async def on_round(self, report: RoundReport) -> None:
        """The autoscaler's ``on_round`` callback: gather; post a digest when one is due."""
        if not self.enabled:
            return
        outcomes = [
            (
                o.result,
                f"{o.placement.chute_id[:8]} on {o.placement.server_id[:8]}"
                + (f" ({o.detail})" if o.detail else ""),
            )
            for o in report.outcomes
        ]
        self.digest.add(self._clock(), outcomes, report.error)
        if self.digest.due(self._clock()):
            await self.flush_digest()

    async def flush_digest(self) -> None:
        if not self.channel or not (self.digest.outcomes or self.digest.errors):
            return
        digest = self.digest.take()
        try:
            await self._outbox.post(self.channel, build_digest_card(digest))
        except SlackSendError as e:
            log.warning("autoscaler digest not delivered: %s", e)
