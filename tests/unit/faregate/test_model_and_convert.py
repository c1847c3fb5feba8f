"""Snapshots survive the wire unchanged, and their version is their content."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from faregate.convert import snapshot_from_pb, snapshot_to_pb, usage_from_pb, usage_to_pb
from faregate.model import (
    Action,
    Budget,
    BudgetCharge,
    Capability,
    Locality,
    Model,
    Outcome,
    Price,
    PriceTier,
    RoutingPolicy,
    Snapshot,
    Team,
    Tenant,
    UsageRecord,
    content_version,
)


def snapshot(revision: int = 1, output_price: int = 400_000_000) -> Snapshot:
    models = (
        Model(
            "flash",
            "google",
            "small",
            Locality.EXTERNAL,
            1_000_000,
            8192,
            Price(100_000_000, 25_000_000, output_price, (PriceTier(200_000, 1, 2, 3),), "p1"),
            quality=MappingProxyType({"summarization": 0.85}),
        ),
        Model(
            "llama",
            "vllm",
            "local",
            Locality.LOCAL,
            32768,
            4096,
            Price(40_000_000, 40_000_000, 60_000_000),
            compliance_tags=("confidential",),
        ),
    )
    capabilities = (
        Capability(
            "summarization",
            "Summaries",
            600,
            ("flash", "llama"),
            RoutingPolicy("ordered", 0.8, ("llama",), MappingProxyType({"high": "large"})),
        ),
    )
    draft = Snapshot(
        version="",
        revision=revision,
        created_at_unix_ms=1_700_000_000_000 + revision,
        models=models,
        capabilities=capabilities,
        tenants=(Tenant("acme", (Team("risk", "CC-1"),)),),
        budgets=(Budget("acme-monthly", 1_000_000_000, tenant="acme"),),
        guardrails=MappingProxyType({"ceilings": [{"capability": "summarization"}]}),
    )
    return dataclasses.replace(draft, version=content_version(draft))


def test_snapshot_round_trips_through_protobuf() -> None:
    original = snapshot()
    decoded = snapshot_from_pb(snapshot_to_pb(original))
    assert decoded == original
    assert content_version(decoded) == original.version
    assert decoded.models_by_name["llama"].compliance_tags == ("confidential",)


def test_version_ignores_revision_and_time_but_not_content() -> None:
    assert snapshot(revision=1).version == snapshot(revision=7).version
    assert snapshot(output_price=400_000_001).version != snapshot().version


def test_usage_record_round_trips() -> None:
    record = UsageRecord(
        decision_id="d1",
        service="svc",
        capability="summarization",
        tenant="acme",
        team="risk",
        model="flash",
        provider="google",
        action=Action.DOWNGRADE,
        input_tokens=10,
        cached_input_tokens=2,
        output_tokens=3,
        cost_nanos=42,
        estimated_cost_nanos=50,
        reserved_cost_nanos=60,
        price_version="p1",
        config_version="v1",
        outcome=Outcome.TIMEOUT,
        latency_ms=120,
        decided_at_unix_ms=1,
        reported_at_unix_ms=2,
        business_value_nanos=7,
        outcome_label="resolved",
        labels=MappingProxyType({"k": "v"}),
        trace_id="t",
        budgets=("b1",),
        charges=(BudgetCharge("b1", "lease-1", "2026-12", 60),),
    )
    assert usage_from_pb(usage_to_pb(record)) == record
