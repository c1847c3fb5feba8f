"""The compiled configuration both sides share: models, capabilities, tenants, budgets.

A `Snapshot` is immutable and identified by a content hash (`version`). The control
plane compiles one from a configuration revision; the sidecar decides from one.
Pure frozen dataclasses: must not import gRPC, SQLAlchemy or the wire types.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return EMPTY


class Locality(StrEnum):
    LOCAL = "local"
    REGIONAL = "regional"
    EXTERNAL = "external"


class Sensitivity(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    REGULATED = "regulated"


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Priority(StrEnum):
    INTERACTIVE = "interactive"
    BATCH = "batch"
    BACKGROUND = "background"


class Complexity(StrEnum):
    UNSPECIFIED = ""
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    REASONING = "reasoning"


class Action(StrEnum):
    ALLOW = "allow"
    DOWNGRADE = "downgrade"
    THROTTLE = "throttle"
    APPROVAL_REQUIRED = "approval_required"
    DENY = "deny"


class Outcome(StrEnum):
    UNSPECIFIED = ""
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    NOT_CALLED = "not_called"
    UNREPORTED = "unreported"  # never reported in time: settled at the reserved amount


@dataclass(frozen=True, slots=True)
class PriceTier:
    min_input_tokens: int
    input_nanos_per_mtok: int
    cached_input_nanos_per_mtok: int
    output_nanos_per_mtok: int


@dataclass(frozen=True, slots=True)
class Price:
    input_nanos_per_mtok: int
    cached_input_nanos_per_mtok: int
    output_nanos_per_mtok: int
    tiers: tuple[PriceTier, ...] = ()
    version: str = ""


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    provider: str
    tier: str
    locality: Locality
    context_window: int
    max_output_tokens: int
    price: Price
    compliance_tags: tuple[str, ...] = ()
    unavailable: bool = False
    quality: Mapping[str, float] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    strategy: str = "cheapest"
    quality_floor: float = 0.0
    downgrade_chain: tuple[str, ...] = ()
    complexity_tiers: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    description: str
    default_max_output_tokens: int
    candidates: tuple[str, ...]
    routing: RoutingPolicy = RoutingPolicy()


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    cost_center: str = ""


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    teams: tuple[Team, ...] = ()


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    limit_nanos: int
    period: str = "month"
    tenant: str = ""
    team: str = ""
    capability: str = ""
    model: str = ""
    tier: str = ""
    labels: Mapping[str, str] = field(default_factory=_empty)
    soft_thresholds: tuple[float, ...] = ()
    mode: str = "strict"
    offline_policy: str = "deny"
    offline_allowance_nanos: int = 0
    offline_max_duration_ms: int = 0
    time_zone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One immutable, versioned compilation of the configuration."""

    version: str
    revision: int
    created_at_unix_ms: int
    models: tuple[Model, ...]
    capabilities: tuple[Capability, ...]
    tenants: tuple[Tenant, ...] = ()
    budgets: tuple[Budget, ...] = ()
    guardrails: Mapping[str, Any] = field(default_factory=_empty)
    governance: Mapping[str, Any] = field(default_factory=_empty)
    models_by_name: Mapping[str, Model] = field(init=False, repr=False, compare=False)
    capabilities_by_name: Mapping[str, Capability] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "models_by_name", MappingProxyType({m.name: m for m in self.models})
        )
        object.__setattr__(
            self,
            "capabilities_by_name",
            MappingProxyType({c.name: c for c in self.capabilities}),
        )


@dataclass(frozen=True, slots=True)
class BudgetCharge:
    """The lease one covering budget was charged through for a call."""

    budget: str
    lease_id: str
    period_key: str = ""
    reserved_nanos: int = 0


@dataclass(frozen=True, slots=True)
class LeaseClose:
    """The final account of a lease, shipped in a sidecar's usage journal after every
    record charged through it. `forfeit`: the remainder is not returned (the sidecar
    cannot account for calls in flight when it crashed)."""

    lease_id: str
    budget: str
    spent_nanos: int
    forfeit: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One settled call, as journaled by a sidecar and stored once in the ledger."""

    decision_id: str
    service: str
    capability: str
    tenant: str
    team: str
    model: str
    provider: str
    action: Action
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_nanos: int
    estimated_cost_nanos: int
    reserved_cost_nanos: int
    price_version: str
    config_version: str
    outcome: Outcome
    latency_ms: int
    decided_at_unix_ms: int
    reported_at_unix_ms: int
    business_value_nanos: int = 0
    outcome_label: str = ""
    labels: Mapping[str, str] = field(default_factory=_empty)
    trace_id: str = ""
    budgets: tuple[str, ...] = ()
    charges: tuple[BudgetCharge, ...] = ()


def _canonical(value: Any) -> Any:
    if isinstance(value, Snapshot):
        return {
            "models": _canonical(value.models),
            "capabilities": _canonical(value.capabilities),
            "tenants": _canonical(value.tenants),
            "budgets": _canonical(value.budgets),
            "guardrails": _canonical(value.guardrails),
            "governance": _canonical(value.governance),
        }
    if hasattr(value, "__dataclass_fields__"):
        return {name: _canonical(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    return value


def content_version(snapshot: Snapshot) -> str:
    """The snapshot's version: a hash of its content (revision and time excluded)."""
    canonical = json.dumps(_canonical(snapshot), sort_keys=True, separators=(",", ":"))
    return "v" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
