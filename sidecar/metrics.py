"""The sidecar's Prometheus metrics and the `/metrics` HTTP endpoint.

Metrics live in the `CollectorRegistry` passed in, never the global default, so
each test builds a fresh one. Costs are exported in nanos like everywhere else;
Prometheus values are floats, which is exact up to 2**53 nanos (about $9M) per
series. Must not import gRPC or the wire types.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_wsgi_server

from faregate.model import Snapshot
from sidecar.engine import Decision
from sidecar.leases import LeaseView
from sidecar.usage import ReportResult

_PREFIX = "faregate_sidecar"


class SidecarMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            f"{_PREFIX}_decisions",
            "Route decisions by action, capability and chosen model.",
            ["action", "capability", "model"],
            registry=registry,
        )
        self.decision_rules = Counter(
            f"{_PREFIX}_decision_rules",
            "Rules fired in Route decisions, by the decision's action and the rule's name "
            "(details such as models and costs left out, so the label set stays bounded).",
            ["action", "rule"],
            registry=registry,
        )
        self.dry_runs = Counter(
            f"{_PREFIX}_dry_runs",
            "Dry-run Route calls (explanations without effects), by action.",
            ["action"],
            registry=registry,
        )
        self.estimated_cost = Counter(
            f"{_PREFIX}_estimated_cost_nanos",
            "Worst-case cost of allowed decisions, nano-USD.",
            ["capability", "model"],
            registry=registry,
        )
        self.route_seconds = Histogram(
            f"{_PREFIX}_route_seconds",
            "Time to answer Route.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
            registry=registry,
        )
        self.reports = Counter(
            f"{_PREFIX}_reports",
            "Usage reports by result (accepted, duplicate, rejected).",
            ["result"],
            registry=registry,
        )
        self.reported_cost = Counter(
            f"{_PREFIX}_reported_cost_nanos",
            "Actual cost of accepted usage reports, nano-USD.",
            registry=registry,
        )
        self.usage_shipped = Counter(
            f"{_PREFIX}_usage_records_shipped",
            "Usage records sent to the control plane (resends included).",
            registry=registry,
        )
        self.usage_acked = Counter(
            f"{_PREFIX}_usage_records_acked",
            "Usage records the control plane acknowledged.",
            registry=registry,
        )
        self.connected = Gauge(
            f"{_PREFIX}_controlplane_connected",
            "1 while the Sync stream to the control plane is up.",
            registry=registry,
        )
        self.snapshots_rejected = Counter(
            f"{_PREFIX}_snapshots_rejected",
            "Pushed snapshots that failed validation (NACKed).",
            registry=registry,
        )
        self.snapshot_info = Gauge(
            f"{_PREFIX}_snapshot_info",
            "The snapshot being served (value 1), by version and revision.",
            ["version", "revision"],
            registry=registry,
        )
        self.lease_granted = Gauge(
            f"{_PREFIX}_lease_granted_nanos",
            "Cumulative grant of the current lease, per budget, nano-USD.",
            ["budget"],
            registry=registry,
        )
        self.lease_held = Gauge(
            f"{_PREFIX}_lease_held_nanos",
            "What is left on the current lease (granted - spent - reserved), per budget.",
            ["budget"],
            registry=registry,
        )
        self.lease_reserved = Gauge(
            f"{_PREFIX}_lease_reserved_nanos",
            "Reserved for admitted calls not yet reported, per budget, nano-USD.",
            ["budget"],
            registry=registry,
        )
        self.reservations = Counter(
            f"{_PREFIX}_reservations",
            "Decisions that reserved from budget leases.",
            registry=registry,
        )
        self.reserved_cost = Counter(
            f"{_PREFIX}_reserved_cost_nanos",
            "Largest reservation per admitted call, summed, nano-USD.",
            registry=registry,
        )
        self.unreported = Counter(
            f"{_PREFIX}_unreported",
            "Admitted calls never reported in time, settled at their reservation.",
            registry=registry,
        )
        self.journal_pending = Gauge(
            f"{_PREFIX}_journal_pending_records",
            "Journal entries (usage records and lease closes) not yet ACKed.",
            registry=registry,
        )
        self.fsync_seconds = Histogram(
            f"{_PREFIX}_journal_fsync_seconds",
            "Time to write and fsync one journal group commit.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5),
            registry=registry,
        )
        self._lease_budgets: set[str] = set()
        self._snapshot_labels: tuple[str, str] | None = None

    def decided(
        self, capability: str, decision: Decision, seconds: float, dry_run: bool = False
    ) -> None:
        self.route_seconds.observe(seconds)
        action = decision.action.value
        if dry_run:
            # An explanation, not traffic: kept out of the decision and cost series.
            self.dry_runs.labels(action).inc()
            return
        self.decisions.labels(action, capability, decision.model).inc()
        for rule in decision.rules:
            self.decision_rules.labels(action, rule.rule).inc()
        if decision.allows_call:
            self.estimated_cost.labels(capability, decision.model).inc(
                decision.estimated_cost_nanos
            )
        if decision.reservation:
            self.reservations.inc()
            self.reserved_cost.inc(decision.reserved_cost_nanos)

    def leases_observed(self, leases: Iterable[LeaseView]) -> None:
        """Current leases by budget (a retiring lease is not current: the newest wins)."""
        seen: set[str] = set()
        for lease in leases:
            seen.add(lease.budget)
            self.lease_granted.labels(lease.budget).set(lease.granted_nanos)
            left = lease.granted_nanos - lease.spent_nanos - lease.reserved_nanos
            self.lease_held.labels(lease.budget).set(max(0, left) if not lease.lapsed else 0)
            self.lease_reserved.labels(lease.budget).set(lease.reserved_nanos)
        for gone in self._lease_budgets - seen:
            for gauge in (self.lease_granted, self.lease_held, self.lease_reserved):
                gauge.remove(gone)
        self._lease_budgets = seen

    def journal_observed(self, pending_records: int) -> None:
        self.journal_pending.set(pending_records)

    def fsynced(self, seconds: float) -> None:
        self.fsync_seconds.observe(seconds)

    def settled_unreported(self, count: int) -> None:
        if count:
            self.unreported.inc(count)

    def reported(self, result: ReportResult) -> None:
        if not result.accepted:
            self.reports.labels("rejected").inc()
        elif result.duplicate:
            self.reports.labels("duplicate").inc()
        else:
            self.reports.labels("accepted").inc()
            self.reported_cost.inc(result.cost_nanos)

    def connected_changed(self, connected: bool) -> None:
        self.connected.set(1 if connected else 0)

    def records_shipped(self, count: int) -> None:
        self.usage_shipped.inc(count)

    def records_acked(self, count: int) -> None:
        self.usage_acked.inc(count)

    def snapshot_rejected(self) -> None:
        self.snapshots_rejected.inc()

    def snapshot_applied(self, snapshot: Snapshot) -> None:
        labels = (snapshot.version, str(snapshot.revision))
        if self._snapshot_labels is not None and self._snapshot_labels != labels:
            self.snapshot_info.remove(*self._snapshot_labels)
        self.snapshot_info.labels(*labels).set(1)
        self._snapshot_labels = labels


class MetricsServer:
    """`/metrics` over HTTP on a background thread; port 0 picks a free port."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_wsgi_server(port, addr=host, registry=registry)
        self.host = host
        self.port: int = self._server.server_port

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
