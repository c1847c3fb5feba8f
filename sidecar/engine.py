"""The decision engine: which model serves a request, and whether it may run at all.

A decision is a pipeline of steps over a `RouteContext`; each step narrows the
candidates or changes the route and records the rules it fired, or ends the
decision. `DEFAULT_STEPS`, in order (docs/policy.md, "Decision order"):

1. `limit_tokens`: ceilings on input (DENY) and output (capped);
2. `filter_candidates`: unavailable, sensitivity, compliance tags, context
   window, blocked paths; nothing left is DENY naming the rules;
3. `rank`: the capability's routing strategy picks the first choice;
4. `enforce_cost_ceilings`: over a cost ceiling, walk down the downgrade chain;
5. `enforce_budgets`: a budget under pressure steps one model down; the route
   must fit every covering budget's lease (else a cheaper model, THROTTLE or DENY);
6. `gate`: governance (risk level by cost band) and approvals;
7. `apply_throttles`: token buckets per priority class;
8. `allow`: ALLOW, or DOWNGRADE when the route is not the first choice.

Effects (throttle tokens, approval uses, lease reservations) are committed only when the final
decision lets the call run and the request is not a dry run; a dry run never
opens an approval either. Everything per snapshot is compiled once
(`compiled.CompiledPolicy`); state kept between requests is the `Runtime` the
caller passes, and time is the `now_ms` (wall) and `mono_ms` (monotonic, for
lease deadlines) it passes.

Pure: plain functions over frozen dataclasses and the shared `faregate.model`.
Must not import gRPC, the wire types (`faregate.v1`), or read a clock or a random
source: the decision id comes in with the call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from faregate.model import Capability, Snapshot
from faregate.pricing import MAX_TOKENS
from sidecar.budgets import enforce_budgets
from sidecar.candidates import filter_candidates
from sidecar.compiled import CompiledPolicy, PolicyCache
from sidecar.context import RouteContext, Runtime, allow
from sidecar.decision import (
    NO_LABELS,
    Candidate,
    Decision,
    RequestError,
    RouteRequest,
    RuleFired,
    no_labels,
)
from sidecar.governance import gate
from sidecar.guardrails import apply_throttles, enforce_cost_ceilings, limit_tokens
from sidecar.routing import rank

__all__ = [
    "DEFAULT_STEPS",
    "NO_LABELS",
    "Candidate",
    "Decision",
    "RequestError",
    "RouteContext",
    "RouteRequest",
    "RuleFired",
    "Runtime",
    "Step",
    "decide",
    "no_labels",
    "validate",
]

# A step either changes the context and returns None, or ends the decision.
Step = Callable[[RouteContext], Decision | None]

DEFAULT_STEPS: tuple[Step, ...] = (
    limit_tokens,
    filter_candidates,
    rank,
    enforce_cost_ceilings,
    enforce_budgets,
    gate,
    apply_throttles,
    allow,
)

# For callers that pass no compiled policy (one-off calls, tests, benchmarks): a
# memo of a pure function, keyed by snapshot identity, holding two snapshots.
_POLICIES = PolicyCache()


def validate(snapshot: Snapshot, request: RouteRequest) -> Capability:
    """Reject what cannot be decided; returns the requested capability."""
    if not request.capability:
        raise RequestError("capability", "is required")
    capability = snapshot.capabilities_by_name.get(request.capability)
    if capability is None:
        known = ", ".join(sorted(snapshot.capabilities_by_name)) or "none"
        raise RequestError(
            "capability", f"unknown capability {request.capability!r} (known: {known})"
        )
    for field in ("input_tokens", "max_output_tokens"):
        value = getattr(request, field)
        if value < 0:
            raise RequestError(field, "must not be negative")
        if value > MAX_TOKENS:
            raise RequestError(field, f"must be at most {MAX_TOKENS:,}")
    score = request.complexity_score
    # NaN compares false to everything, so it must be rejected explicitly.
    if score is not None and not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise RequestError("complexity_score", f"must be between 0 and 1, got {score}")
    return capability


def decide(
    snapshot: Snapshot,
    request: RouteRequest,
    decision_id: str,
    *,
    now_ms: int = 0,
    mono_ms: int | None = None,
    runtime: Runtime | None = None,
    policy: CompiledPolicy | None = None,
    steps: Sequence[Step] = DEFAULT_STEPS,
) -> Decision:
    """Decide one request against one snapshot. Raises RequestError on invalid input.

    `policy` must be `snapshot` compiled; without one it is compiled (and memoized).
    Without a `runtime` the request sees fresh buckets and an empty approval book.
    Without `mono_ms`, lease deadlines are measured on `now_ms`."""
    capability = validate(snapshot, request)
    if policy is None:
        policy = _POLICIES.get(snapshot)
    ctx = RouteContext(
        snapshot=snapshot,
        policy=policy,
        compiled=policy.capabilities[capability.name],
        request=request,
        decision_id=decision_id,
        now_ms=now_ms,
        runtime=runtime if runtime is not None else Runtime.fresh(),
        max_output_tokens=request.max_output_tokens or capability.default_max_output_tokens,
        mono_ms=now_ms if mono_ms is None else mono_ms,
    )
    if ctx.compiled.missing:
        # A validated snapshot never gets here; say so rather than fail obscurely.
        ctx.fire("model:unknown", "not in the catalog: " + ", ".join(ctx.compiled.missing))
    for step in steps:
        decision = step(ctx)
        if decision is not None:
            if decision.allows_call and not request.dry_run:
                ctx.commit()
            return decision
    raise AssertionError("the last step must decide")  # pragma: no cover
