"""The control plane's Prometheus metrics and the HTTP server that exposes them.

Metrics live in an injected `CollectorRegistry` (a fresh one per test, the process
registry is never touched), and the `/metrics` server binds `--metrics-listen`,
port 0 included, reporting the port it got.

May import prometheus_client; must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class ControlPlaneMetrics:
    """Every metric the control plane exports, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.sidecars_connected = Gauge(
            "faregate_controlplane_sidecars_connected",
            "Sidecars with an open Sync stream to this replica.",
            registry=registry,
        )
        self.snapshots_pushed = Counter(
            "faregate_controlplane_snapshots_pushed",
            "Snapshots sent to sidecars.",
            registry=registry,
        )
        self.snapshot_acks = Counter(
            "faregate_controlplane_snapshot_acks",
            "Snapshot ACKs received from sidecars.",
            registry=registry,
        )
        self.snapshot_nacks = Counter(
            "faregate_controlplane_snapshot_nacks",
            "Snapshot NACKs received from sidecars (a sidecar rejected a snapshot).",
            registry=registry,
        )
        self.usage_batches_applied = Counter(
            "faregate_controlplane_usage_batches_applied",
            "Usage batches applied to the ledger.",
            registry=registry,
        )
        self.usage_batches_duplicate = Counter(
            "faregate_controlplane_usage_batches_duplicate",
            "Usage batches received again and not counted again.",
            registry=registry,
        )
        self.usage_batches_failed = Counter(
            "faregate_controlplane_usage_batches_failed",
            "Usage batches that could not be applied (the sidecar resends them).",
            registry=registry,
        )
        self.usage_records_applied = Counter(
            "faregate_controlplane_usage_records_applied",
            "Usage records written to the ledger.",
            registry=registry,
        )
        self.usage_late_records = Counter(
            "faregate_controlplane_usage_late_records",
            "Budget charges that arrived after their lease had ended (counted, late).",
            registry=registry,
        )
        self.usage_late_nanos = Counter(
            "faregate_controlplane_usage_late_nanos",
            "Cost in nano-USD of budget charges that arrived after their lease had ended.",
            registry=registry,
        )
        self.leases_granted = Counter(
            "faregate_controlplane_leases_granted",
            "Lease grants (new leases, top-ups and refreshes) sent to sidecars.",
            registry=registry,
        )
        self.lease_granted_nanos = Counter(
            "faregate_controlplane_lease_granted_nanos",
            "Budget in nano-USD newly granted to leases (top-ups, not cumulative totals).",
            registry=registry,
        )
        self.leases_closed = Counter(
            "faregate_controlplane_leases_closed",
            "Leases closed or forfeited by their sidecars' usage journals.",
            registry=registry,
        )
        self.leases_expired = Counter(
            "faregate_controlplane_leases_expired",
            "Leases expired by this replica (neither refreshed nor closed in time).",
            registry=registry,
        )
        self.budget_remaining_nanos = Gauge(
            "faregate_controlplane_budget_remaining_nanos",
            "Limit minus committed minus outstanding, per budget in its current period, "
            "as of this replica's latest grant or budget listing.",
            ["budget"],
            registry=registry,
        )
        self.revisions_applied = Counter(
            "faregate_controlplane_revisions_applied",
            "Configuration revisions stored through this replica.",
            registry=registry,
        )
        self.approvals_requested = Counter(
            "faregate_controlplane_approvals_requested",
            "Approval requests received from sidecars (each approval id counted once).",
            registry=registry,
        )
        self.approvals_decided = Counter(
            "faregate_controlplane_approvals_decided",
            "Approvals decided through this replica, by outcome.",
            ["state"],
            registry=registry,
        )
        self.approval_decisions_pushed = Counter(
            "faregate_controlplane_approval_decisions_pushed",
            "Approval decisions sent to sidecars on their Sync streams.",
            registry=registry,
        )
        self.configs_rejected = Counter(
            "faregate_controlplane_configs_rejected",
            "Configurations rejected as invalid.",
            registry=registry,
        )


@dataclass
class MetricsServer:
    """A running `/metrics` endpoint."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve `registry` on http://HOST:PORT/metrics in a daemon thread."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(host, server.server_port, server, thread)
