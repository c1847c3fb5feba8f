"""Faregate sidecar: decides locally which model serves each request of its service.

`engine` (pure decisions), `decider` (snapshot, ids, idempotency), `usage` and
`outbox` (Report to usage batches), `snapshot_store` (current and last good
snapshot), `control_link` (Sync client), `router_service` (Router gRPC), `metrics`,
and `main`, the only place that wires them. Never imports `controlplane`.
"""

from sidecar.engine import Decision, RequestError, RouteRequest, RuleFired, decide

__all__ = ["Decision", "RequestError", "RouteRequest", "RuleFired", "decide"]
