"""Faregate sidecar: decides locally which model serves each request of its service.

The decision engine is pure: `engine` (the pipeline of steps), `decision` (its
values), `context` (what steps share, and the `Runtime` kept between requests),
`compiled` (a snapshot compiled once for deciding), `candidates` (filters),
`routing` (strategies, downgrade chain, budget pressure), `guardrails` (ceilings,
throttles), `throttle` (token buckets), `governance` and `approvals` (the approval
book), `pressure`, `budgets`, `budget_scope` and `leases` (budget leases and
pressure). Around it: `decider` (snapshot, ids, time, idempotency), `usage`,
`journal` and `group_commit` (Report to durable usage batches),
`snapshot_store` (current and last good snapshot), `control_link` (Sync
client), `router_service` (Router gRPC), `metrics`, and `main`, the only place
that wires them. Never imports `controlplane`.
"""

from sidecar.engine import Decision, RequestError, RouteRequest, RuleFired, decide

__all__ = ["Decision", "RequestError", "RouteRequest", "RuleFired", "decide"]
