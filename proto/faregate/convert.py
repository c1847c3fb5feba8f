"""Maps the shared model to and from the wire types (`faregate.v1`).

The only shared module that touches `_pb2` types. No I/O, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from faregate.model import (
    Action,
    Budget,
    BudgetCharge,
    Capability,
    Complexity,
    LeaseClose,
    Locality,
    Model,
    Outcome,
    Price,
    PriceTier,
    Priority,
    RiskLevel,
    RoutingPolicy,
    Sensitivity,
    Snapshot,
    Team,
    Tenant,
    UsageRecord,
)
from faregate.v1 import control_pb2
from faregate.v1 import types_pb2 as pb

E = TypeVar("E")
W = TypeVar("W")


def _enum_maps(pairs: Mapping[E, W]) -> tuple[dict[E, W], dict[W, E]]:
    return dict(pairs), {number: value for value, number in pairs.items()}


LOCALITY_TO_PB, LOCALITY_FROM_PB = _enum_maps(
    {
        Locality.LOCAL: pb.LOCALITY_LOCAL,
        Locality.REGIONAL: pb.LOCALITY_REGIONAL,
        Locality.EXTERNAL: pb.LOCALITY_EXTERNAL,
    }
)
SENSITIVITY_TO_PB, SENSITIVITY_FROM_PB = _enum_maps(
    {
        Sensitivity.PUBLIC: pb.SENSITIVITY_PUBLIC,
        Sensitivity.INTERNAL: pb.SENSITIVITY_INTERNAL,
        Sensitivity.CONFIDENTIAL: pb.SENSITIVITY_CONFIDENTIAL,
        Sensitivity.REGULATED: pb.SENSITIVITY_REGULATED,
    }
)
RISK_TO_PB, RISK_FROM_PB = _enum_maps(
    {
        RiskLevel.LOW: pb.RISK_LEVEL_LOW,
        RiskLevel.MEDIUM: pb.RISK_LEVEL_MEDIUM,
        RiskLevel.HIGH: pb.RISK_LEVEL_HIGH,
        RiskLevel.CRITICAL: pb.RISK_LEVEL_CRITICAL,
    }
)
PRIORITY_TO_PB, PRIORITY_FROM_PB = _enum_maps(
    {
        Priority.INTERACTIVE: pb.PRIORITY_INTERACTIVE,
        Priority.BATCH: pb.PRIORITY_BATCH,
        Priority.BACKGROUND: pb.PRIORITY_BACKGROUND,
    }
)
COMPLEXITY_TO_PB, COMPLEXITY_FROM_PB = _enum_maps(
    {
        Complexity.UNSPECIFIED: pb.COMPLEXITY_UNSPECIFIED,
        Complexity.LOW: pb.COMPLEXITY_LOW,
        Complexity.MEDIUM: pb.COMPLEXITY_MEDIUM,
        Complexity.HIGH: pb.COMPLEXITY_HIGH,
        Complexity.REASONING: pb.COMPLEXITY_REASONING,
    }
)
ACTION_TO_PB, ACTION_FROM_PB = _enum_maps(
    {
        Action.ALLOW: pb.ACTION_ALLOW,
        Action.DOWNGRADE: pb.ACTION_DOWNGRADE,
        Action.THROTTLE: pb.ACTION_THROTTLE,
        Action.APPROVAL_REQUIRED: pb.ACTION_APPROVAL_REQUIRED,
        Action.DENY: pb.ACTION_DENY,
    }
)
OUTCOME_TO_PB, OUTCOME_FROM_PB = _enum_maps(
    {
        Outcome.UNSPECIFIED: pb.OUTCOME_UNSPECIFIED,
        Outcome.SUCCESS: pb.OUTCOME_SUCCESS,
        Outcome.FAILURE: pb.OUTCOME_FAILURE,
        Outcome.TIMEOUT: pb.OUTCOME_TIMEOUT,
        Outcome.CANCELLED: pb.OUTCOME_CANCELLED,
        Outcome.NOT_CALLED: pb.OUTCOME_NOT_CALLED,
        Outcome.UNREPORTED: pb.OUTCOME_UNREPORTED,
    }
)


class SnapshotDecodeError(ValueError):
    """A snapshot message that does not describe a valid snapshot."""


def _price_to_pb(price: Price) -> pb.ModelPrice:
    return pb.ModelPrice(
        input_nanos_per_mtok=price.input_nanos_per_mtok,
        cached_input_nanos_per_mtok=price.cached_input_nanos_per_mtok,
        output_nanos_per_mtok=price.output_nanos_per_mtok,
        tiers=[
            pb.PriceTier(
                min_input_tokens=t.min_input_tokens,
                input_nanos_per_mtok=t.input_nanos_per_mtok,
                cached_input_nanos_per_mtok=t.cached_input_nanos_per_mtok,
                output_nanos_per_mtok=t.output_nanos_per_mtok,
            )
            for t in price.tiers
        ],
        price_version=price.version,
    )


def _price_from_pb(message: pb.ModelPrice) -> Price:
    return Price(
        input_nanos_per_mtok=message.input_nanos_per_mtok,
        cached_input_nanos_per_mtok=message.cached_input_nanos_per_mtok,
        output_nanos_per_mtok=message.output_nanos_per_mtok,
        tiers=tuple(
            PriceTier(
                min_input_tokens=t.min_input_tokens,
                input_nanos_per_mtok=t.input_nanos_per_mtok,
                cached_input_nanos_per_mtok=t.cached_input_nanos_per_mtok,
                output_nanos_per_mtok=t.output_nanos_per_mtok,
            )
            for t in message.tiers
        ),
        version=message.price_version,
    )


def model_to_pb(model: Model) -> pb.Model:
    return pb.Model(
        name=model.name,
        provider=model.provider,
        tier=model.tier,
        locality=LOCALITY_TO_PB[model.locality],
        compliance_tags=list(model.compliance_tags),
        context_window=model.context_window,
        max_output_tokens=model.max_output_tokens,
        price=_price_to_pb(model.price),
        unavailable=model.unavailable,
        quality=dict(model.quality),
    )


def model_from_pb(message: pb.Model) -> Model:
    if message.locality not in LOCALITY_FROM_PB:
        raise SnapshotDecodeError(f"model {message.name!r}: locality is not set")
    return Model(
        name=message.name,
        provider=message.provider,
        tier=message.tier,
        locality=LOCALITY_FROM_PB[message.locality],
        compliance_tags=tuple(message.compliance_tags),
        context_window=message.context_window,
        max_output_tokens=message.max_output_tokens,
        price=_price_from_pb(message.price),
        unavailable=message.unavailable,
        quality=MappingProxyType(dict(message.quality)),
    )


def capability_to_pb(capability: Capability) -> pb.Capability:
    routing = capability.routing
    return pb.Capability(
        name=capability.name,
        description=capability.description,
        default_max_output_tokens=capability.default_max_output_tokens,
        candidates=list(capability.candidates),
        routing=pb.RoutingPolicy(
            strategy=routing.strategy,
            quality_floor=routing.quality_floor,
            downgrade_chain=list(routing.downgrade_chain),
            complexity_tiers=dict(routing.complexity_tiers),
        ),
    )


def capability_from_pb(message: pb.Capability) -> Capability:
    routing = message.routing
    return Capability(
        name=message.name,
        description=message.description,
        default_max_output_tokens=message.default_max_output_tokens,
        candidates=tuple(message.candidates),
        routing=RoutingPolicy(
            strategy=routing.strategy or "cheapest",
            quality_floor=routing.quality_floor,
            downgrade_chain=tuple(routing.downgrade_chain),
            complexity_tiers=MappingProxyType(dict(routing.complexity_tiers)),
        ),
    )


def tenant_to_pb(tenant: Tenant) -> pb.Tenant:
    return pb.Tenant(
        name=tenant.name,
        teams=[pb.Team(name=t.name, cost_center=t.cost_center) for t in tenant.teams],
    )


def tenant_from_pb(message: pb.Tenant) -> Tenant:
    return Tenant(
        name=message.name,
        teams=tuple(Team(name=t.name, cost_center=t.cost_center) for t in message.teams),
    )


def budget_to_pb(budget: Budget) -> pb.Budget:
    return pb.Budget(
        name=budget.name,
        tenant=budget.tenant,
        team=budget.team,
        capability=budget.capability,
        model=budget.model,
        tier=budget.tier,
        labels=dict(budget.labels),
        period=budget.period,
        limit_nanos=budget.limit_nanos,
        soft_thresholds=list(budget.soft_thresholds),
        mode=budget.mode,
        offline_policy=budget.offline_policy,
        offline_allowance_nanos=budget.offline_allowance_nanos,
        offline_max_duration_ms=budget.offline_max_duration_ms,
        time_zone=budget.time_zone,
    )


def budget_from_pb(message: pb.Budget) -> Budget:
    return Budget(
        name=message.name,
        tenant=message.tenant,
        team=message.team,
        capability=message.capability,
        model=message.model,
        tier=message.tier,
        labels=MappingProxyType(dict(message.labels)),
        period=message.period,
        limit_nanos=message.limit_nanos,
        soft_thresholds=tuple(message.soft_thresholds),
        mode=message.mode,
        offline_policy=message.offline_policy,
        offline_allowance_nanos=message.offline_allowance_nanos,
        offline_max_duration_ms=message.offline_max_duration_ms,
        time_zone=message.time_zone,
    )


def _section_from_pb(section: pb.PolicySection, name: str) -> Mapping[str, Any]:
    if not section.json:
        return MappingProxyType({})
    try:
        value = json.loads(section.json)
    except json.JSONDecodeError as exc:
        raise SnapshotDecodeError(f"{name}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise SnapshotDecodeError(f"{name}: must be a JSON object")
    return MappingProxyType(value)


def snapshot_to_pb(snapshot: Snapshot) -> pb.Snapshot:
    return pb.Snapshot(
        version=snapshot.version,
        revision=snapshot.revision,
        created_at_unix_ms=snapshot.created_at_unix_ms,
        models=[model_to_pb(m) for m in snapshot.models],
        capabilities=[capability_to_pb(c) for c in snapshot.capabilities],
        tenants=[tenant_to_pb(t) for t in snapshot.tenants],
        budgets=[budget_to_pb(b) for b in snapshot.budgets],
        guardrails=pb.PolicySection(json=json.dumps(dict(snapshot.guardrails), sort_keys=True)),
        governance=pb.PolicySection(json=json.dumps(dict(snapshot.governance), sort_keys=True)),
    )


def snapshot_from_pb(message: pb.Snapshot) -> Snapshot:
    """Decode a snapshot; raises SnapshotDecodeError on structurally invalid input."""
    return Snapshot(
        version=message.version,
        revision=message.revision,
        created_at_unix_ms=message.created_at_unix_ms,
        models=tuple(model_from_pb(m) for m in message.models),
        capabilities=tuple(capability_from_pb(c) for c in message.capabilities),
        tenants=tuple(tenant_from_pb(t) for t in message.tenants),
        budgets=tuple(budget_from_pb(b) for b in message.budgets),
        guardrails=_section_from_pb(message.guardrails, "guardrails"),
        governance=_section_from_pb(message.governance, "governance"),
    )


def usage_to_pb(record: UsageRecord) -> pb.UsageRecord:
    return pb.UsageRecord(
        decision_id=record.decision_id,
        service=record.service,
        capability=record.capability,
        tenant=record.tenant,
        team=record.team,
        model=record.model,
        provider=record.provider,
        action=ACTION_TO_PB[record.action],
        input_tokens=record.input_tokens,
        cached_input_tokens=record.cached_input_tokens,
        output_tokens=record.output_tokens,
        cost_nanos=record.cost_nanos,
        estimated_cost_nanos=record.estimated_cost_nanos,
        reserved_cost_nanos=record.reserved_cost_nanos,
        price_version=record.price_version,
        config_version=record.config_version,
        outcome=OUTCOME_TO_PB[record.outcome],
        latency_ms=record.latency_ms,
        business_value_nanos=record.business_value_nanos,
        outcome_label=record.outcome_label,
        labels=dict(record.labels),
        decided_at_unix_ms=record.decided_at_unix_ms,
        reported_at_unix_ms=record.reported_at_unix_ms,
        trace_id=record.trace_id,
        budgets=list(record.budgets),
        charges=[
            pb.BudgetCharge(
                budget=c.budget,
                lease_id=c.lease_id,
                period_key=c.period_key,
                reserved_nanos=c.reserved_nanos,
            )
            for c in record.charges
        ],
    )


def usage_from_pb(message: pb.UsageRecord) -> UsageRecord:
    return UsageRecord(
        decision_id=message.decision_id,
        service=message.service,
        capability=message.capability,
        tenant=message.tenant,
        team=message.team,
        model=message.model,
        provider=message.provider,
        action=ACTION_FROM_PB.get(message.action, Action.ALLOW),
        input_tokens=message.input_tokens,
        cached_input_tokens=message.cached_input_tokens,
        output_tokens=message.output_tokens,
        cost_nanos=message.cost_nanos,
        estimated_cost_nanos=message.estimated_cost_nanos,
        reserved_cost_nanos=message.reserved_cost_nanos,
        price_version=message.price_version,
        config_version=message.config_version,
        outcome=OUTCOME_FROM_PB.get(message.outcome, Outcome.UNSPECIFIED),
        latency_ms=message.latency_ms,
        business_value_nanos=message.business_value_nanos,
        outcome_label=message.outcome_label,
        labels=MappingProxyType(dict(message.labels)),
        decided_at_unix_ms=message.decided_at_unix_ms,
        reported_at_unix_ms=message.reported_at_unix_ms,
        trace_id=message.trace_id,
        budgets=tuple(message.budgets),
        charges=tuple(
            BudgetCharge(
                budget=c.budget,
                lease_id=c.lease_id,
                period_key=c.period_key,
                reserved_nanos=c.reserved_nanos,
            )
            for c in message.charges
        ),
    )


def lease_close_to_pb(close: LeaseClose) -> control_pb2.LeaseClose:
    return control_pb2.LeaseClose(
        lease_id=close.lease_id,
        budget=close.budget,
        spent_nanos=close.spent_nanos,
        forfeit=close.forfeit,
        reason=close.reason,
    )


def lease_close_from_pb(message: control_pb2.LeaseClose) -> LeaseClose:
    return LeaseClose(
        lease_id=message.lease_id,
        budget=message.budget,
        spent_nanos=message.spent_nanos,
        forfeit=message.forfeit,
        reason=message.reason,
    )
