"""Settings, read once by the wiring code (never at import time).

gepetto runs beside an existing chutes-miner, so it accepts that stack's environment names
unprefixed (`MINER_SS58`, `MINER_SEED`, `VALIDATORS`, `POSTGRESQL`, `REDIS_URL`,
`CHUTES_NAMESPACE`, `KUBECONFIG`, ...). Everything that is gepetto's own carries the `GEPETTO_`
prefix. Secrets are `SecretStr`: their values never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gepetto_core.errors import ConfigError
from gepetto_core.scheduling.policy import BackoffPolicy, PlanPolicy


class ValidatorEndpoint(BaseModel):
    """One entry of chutes-miner's `VALIDATORS.supported` list."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    hotkey: str
    api: str
    socket: str | None = None
    registry: str | None = None


class ValidatorsConfig(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    supported: list[ValidatorEndpoint]
    default_api: str | None = Field(default=None, alias="defaultApi")
    default_registry: str | None = Field(default=None, alias="defaultRegistry")

    def by_hotkey(self, hotkey: str) -> ValidatorEndpoint | None:
        return next((v for v in self.supported if v.hotkey == hotkey), None)


Role = Literal["viewer", "operator", "admin"]

_BACKOFF = BackoffPolicy()
_PLAN = PlanPolicy()
_MINUTE = timedelta(minutes=1)


def _env(name: str, default: Any = None, **kwargs: Any) -> Any:
    """A chutes-miner setting: read from exactly this environment name (no prefix added)."""
    return Field(default, validation_alias=AliasChoices(name), **kwargs)


def normalize_postgres_dsn(value: str) -> str:
    """Accept the SQLAlchemy form chutes-miner uses (`postgresql+asyncpg://`) and plain
    `postgresql://` / `postgres://`; asyncpg wants the plain scheme."""
    value = value.strip()
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise ValueError("expected a URL like postgresql://user:pass@host:5432/db")
    base = scheme.split("+", 1)[0]
    if base not in ("postgresql", "postgres"):
        raise ValueError(f"unsupported scheme {scheme!r}; expected postgresql://")
    return f"postgresql://{rest}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GEPETTO_",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        hide_input_in_errors=True,
    )

    # --- chutes-miner names (unprefixed) -----------------------------------------------------
    miner_ss58: str | None = _env("MINER_SS58")
    miner_seed: SecretStr | None = _env("MINER_SEED")
    validators: Annotated[ValidatorsConfig | None, NoDecode] = _env("VALIDATORS")
    postgresql: SecretStr | None = _env("POSTGRESQL")
    redis_url: SecretStr | None = _env("REDIS_URL")
    chutes_namespace: str = _env("CHUTES_NAMESPACE", "chutes")
    kubeconfig: str | None = _env("KUBECONFIG")
    registry_proxy_port: int = _env("REGISTRY_PROXY_PORT", 30500, ge=1, le=65535)
    # TEE VM version from which images come straight from the validator's registry (mTLS);
    # empty = never (every server pulls through the local registry proxy).
    mtls_registry_min_version: str = _env("MTLS_REGISTRY_MIN_VERSION", "1.4.0")
    nvidia_runtime: str = _env("NVIDIA_RUNTIME", "nvidia")
    cache_max_age_days: int = _env("CACHE_MAX_AGE_DAYS", 7, ge=0)
    cache_max_size_gb: int = _env("CACHE_MAX_SIZE_GB", 500, ge=0)
    cache_overrides: Annotated[dict[str, int], NoDecode] = _env("CACHE_OVERRIDES", {})
    chute_shutdown_time_seconds: int = _env("CHUTE_SHUTDOWN_TIME_SECONDS", 180, ge=0)

    # --- gepetto's own (GEPETTO_ prefix; the Slack bot's are in bot/settings.py) ------------
    roles: Annotated[dict[str, Role], NoDecode] = Field(default_factory=dict)

    data_dir: str = ".gepetto"  # the demo's embedded database and kubeconfig live here
    event_source: Literal["redis", "socketio", "none"] = "redis"
    # Cluster layout (docs/multi-cluster.md): `single` = one cluster through KUBECONFIG; `multi`
    # = one k3s cluster per GPU server, its kubeconfig in servers.kubeconfig; `auto` = multi
    # when a node of the KUBECONFIG cluster is labelled node.kubernetes.io/instance-type=k3s.
    cluster_layout: Literal["auto", "single", "multi"] = "auto"
    # Multi layout: where cluster state is read. `monitor` = the chutes-monitor cache in Redis
    # (REDIS_URL, or GEPETTO_MONITOR_REDIS_URL); `direct` = list each server's API ourselves.
    cluster_source: Literal["monitor", "direct"] = "monitor"
    monitor_redis_url: SecretStr | None = None
    # Multi layout: one server cluster's call gives up after this long; at most this many
    # clusters are called at once.
    cluster_timeout_seconds: float = Field(default=10.0, gt=0)
    # Both layouts: how long a create or delete (Job, Service, ConfigMap) may take to be
    # answered once connected; the official miner allows 60-120 s.
    cluster_write_timeout_seconds: float = Field(default=120.0, gt=0)
    cluster_fanout: int = Field(default=32, ge=1)
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    sync_interval_seconds: float = Field(default=30.0, gt=0)
    autoscale_interval_seconds: float = Field(default=60.0, gt=0)
    reconcile_interval_seconds: float = Field(default=60.0, gt=0)
    # The planner's knobs default to the pure policy's values (defined once, in
    # scheduling/policy.py); `services.planning_input.plan_policy` maps them back.
    failure_window_minutes: float = Field(default=_BACKOFF.failure_window / _MINUTE, gt=0)
    failure_cooldown_minutes: float = Field(default=_BACKOFF.base_cooldown / _MINUTE, gt=0)
    failure_cooldown_max_minutes: float = Field(default=_BACKOFF.max_cooldown / _MINUTE, gt=0)
    # Deployments a server in back-off may be starting at once (0 = none until it cools down).
    failure_server_probes: int = Field(default=_BACKOFF.fenced_server_probes, ge=0)
    # Deploy calls (launch token, Job, rows) running at once; a round's placements queue for them.
    max_deploys_in_flight: int = Field(default=8, ge=1)
    # Placements per round and pending pulls per server (None = no limit). No pull limit by
    # default: the kubelet already pulls one image at a time per node (docs/scheduling.md#defaults).
    max_deploys_per_round: int | None = Field(default=_PLAN.max_deploys_per_round, ge=1)
    max_pulls_per_server: int | None = Field(default=_PLAN.max_pulls_per_server, ge=1)
    disk_reserve_gb: int = Field(default=20, ge=0)
    # How much the GPUs' hourly cost counts against a chute's pay (kappa): 1 for rented GPUs
    # (an idle GPU can be given back), 0 when the cost is sunk (owned hardware: any pay beats
    # an idle GPU), between for a fleet that is partly either.
    cost_weight: float = Field(default=_PLAN.cost_weight, ge=0, le=1)
    # Fleet history (gepetto_fleet_history) older than this is pruned.
    history_retention_days: float = Field(default=14.0, gt=0)
    leader_election: bool = False
    lease_name: str = "gepetto-leader"
    lease_duration_seconds: int = Field(default=15, ge=5)
    lease_renew_seconds: float = Field(default=2.0, gt=0)  # leader renews (standby retries)
    lease_identity: str | None = None  # default: hostname-pid; the manifests pass the pod name
    ready_max_sync_age_seconds: float = Field(default=300.0, gt=0)  # leader unready past this
    loop_lag_max_seconds: float = Field(default=5.0, gt=0)  # /healthz fails past this lag

    @field_validator("validators", mode="before")
    @classmethod
    def _parse_validators(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return None
            return json.loads(value)
        return value

    @field_validator("mtls_registry_min_version")
    @classmethod
    def _check_mtls_version(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"v?\d+(\.\d+)*", value):
            raise ValueError("must be a version such as 1.4.0, or empty to disable")
        return value

    @field_validator("postgresql", mode="before")
    @classmethod
    def _parse_postgres(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        raw = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        return SecretStr(normalize_postgres_dsn(raw))

    @field_validator("cache_overrides", "roles", mode="before")
    @classmethod
    def _parse_json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("miner_seed", mode="before")
    @classmethod
    def _check_seed(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        raw = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        hexpart = raw[2:] if raw.startswith("0x") else raw
        if len(hexpart) != 64 or any(c not in "0123456789abcdefABCDEF" for c in hexpart):
            # The message must not echo the value: it is the hotkey's private seed.
            raise ValueError("must be a 32-byte hex seed (64 hex digits, optional 0x prefix)")
        return SecretStr(raw)

    def postgres_dsn(self) -> str | None:
        return self.postgresql.get_secret_value() if self.postgresql else None

    def require_miner_identity(self) -> tuple[str, SecretStr]:
        if not self.miner_ss58:
            raise ConfigError("MINER_SS58", "is required to talk to the validator")
        if self.miner_seed is None:
            raise ConfigError("MINER_SEED", "is required to sign validator requests")
        return self.miner_ss58, self.miner_seed

    def require_validators(self) -> ValidatorsConfig:
        if self.validators is None or not self.validators.supported:
            raise ConfigError("VALIDATORS", 'is required: {"supported":[{"hotkey","api",...}]}')
        return self.validators


S = TypeVar("S", bound=Settings)


def _variable_name(model: type[Settings], loc: str) -> str:
    """The environment variable behind a validation error's location (a field or an alias)."""
    for field, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            if loc in (field, *map(str, alias.choices)):
                return str(alias.choices[0])
        elif loc == field:
            return f"GEPETTO_{field.upper()}"
    return loc


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from `environ` (default: the process environment) and `overrides`.

    Any problem becomes a ConfigError naming the environment variable, without echoing its
    value (it may be a secret).
    """
    return load_settings_as(Settings, environ, **overrides)


def load_settings_as(
    model: type[S], environ: Mapping[str, str] | None = None, **overrides: Any
) -> S:
    """`load_settings` for a front end's own settings class (a subclass adding its fields, e.g.
    the Slack bot's in bot/settings.py)."""
    try:
        if environ is None:
            return model(**overrides)
        return _settings_from_mapping(model, environ, overrides)
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        message = str(err["msg"]).removeprefix("Value error, ")
        inner = ".".join(str(part) for part in err["loc"][1:])
        if inner:
            message = f"{inner}: {message}"
        raise ConfigError(_variable_name(model, field), message) from None


def _settings_from_mapping(
    model: type[S], environ: Mapping[str, str], overrides: dict[str, Any]
) -> S:
    """Build settings from an explicit mapping (tests, the demo) instead of os.environ."""
    values: dict[str, Any] = {}
    for field, info in model.model_fields.items():
        alias = info.validation_alias
        names = (
            [str(c) for c in alias.choices]
            if isinstance(alias, AliasChoices)
            else [f"GEPETTO_{field.upper()}"]
        )
        for name in names:
            if name in environ:
                values[names[0] if isinstance(alias, AliasChoices) else field] = environ[name]
                break
    values.update(overrides)
    # model_validate skips BaseSettings.__init__, so os.environ is not consulted.
    return model.model_validate(values)
