"""Sidecar metrics, each test on a fresh registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from faregate.model import Action
from sidecar.engine import Decision, RuleFired
from sidecar.metrics import SidecarMetrics
from sidecar.usage import ReportResult
from tests.unit.sidecar.catalog import make_snapshot


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_decisions_and_estimated_cost_are_counted() -> None:
    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    allow = Decision("d", Action.ALLOW, "v1", model="tiny", estimated_cost_nanos=300)
    deny = Decision("e", Action.DENY, "v1")
    metrics.decided("chat", allow, 0.0001)
    metrics.decided("chat", allow, 0.0001)
    metrics.decided("chat", deny, 0.0001)
    name = "faregate_sidecar_decisions_total"
    assert value(registry, name, action="allow", capability="chat", model="tiny") == 2
    assert value(registry, name, action="deny", capability="chat", model="") == 1
    cost = "faregate_sidecar_estimated_cost_nanos_total"
    assert value(registry, cost, capability="chat", model="tiny") == 600
    assert value(registry, "faregate_sidecar_route_seconds_count") == 3


def test_reports_by_result() -> None:
    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    metrics.reported(ReportResult("a", True, 10))
    metrics.reported(ReportResult("a", True, 10, duplicate=True))
    metrics.reported(ReportResult("b", False, error="unknown"))
    name = "faregate_sidecar_reports_total"
    for result in ("accepted", "duplicate", "rejected"):
        assert value(registry, name, result=result) == 1
    assert value(registry, "faregate_sidecar_reported_cost_nanos_total") == 10


def test_link_and_snapshot_state() -> None:
    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    metrics.connected_changed(True)
    metrics.records_shipped(5)
    metrics.records_acked(3)
    assert value(registry, "faregate_sidecar_controlplane_connected") == 1
    assert value(registry, "faregate_sidecar_usage_records_shipped_total") == 5
    assert value(registry, "faregate_sidecar_usage_records_acked_total") == 3
    first, second = make_snapshot(revision=1), make_snapshot(revision=2)
    metrics.snapshot_applied(first)
    metrics.snapshot_applied(second)
    info = "faregate_sidecar_snapshot_info"
    assert value(registry, info, version=second.version, revision="2") == 1
    # Only the snapshot being served is exported.
    assert value(registry, info, version=first.version, revision="1") is None


def test_rules_are_counted_by_name_and_dry_runs_apart() -> None:
    registry = CollectorRegistry()
    metrics = SidecarMetrics(registry)
    rules = (RuleFired("blocked:no-large", "removed big"), RuleFired("routing:cheapest", "x"))
    allow = Decision("d", Action.DOWNGRADE, "v1", model="small", rules=rules)
    metrics.decided("chat", allow, 0.0001)
    metrics.decided("chat", allow, 0.0001, dry_run=True)
    name = "faregate_sidecar_decision_rules_total"
    assert value(registry, name, action="downgrade", rule="blocked:no-large") == 1
    assert value(registry, name, action="downgrade", rule="routing:cheapest") == 1
    assert value(registry, "faregate_sidecar_dry_runs_total", action="downgrade") == 1
    decisions = "faregate_sidecar_decisions_total"
    assert value(registry, decisions, action="downgrade", capability="chat", model="small") == 1
