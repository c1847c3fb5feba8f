"""Guardrails: per-request ceilings and token-bucket throttles.

Ceilings (`guardrails.ceilings`) apply to requests matching all the keys a rule
sets. Before candidates are priced: input over `max_input_tokens` is `DENY`
(`ceiling:NAME.max_input_tokens`), and the output cap is lowered to
`max_output_tokens` (`ceiling:NAME.max_output_tokens`), so every estimate and
context-window check uses the capped output. After ranking: a route whose
worst-case cost is over `max_cost_per_request` walks down the downgrade chain to
the first model within every cost ceiling that applies
(`ceiling:NAME.max_cost`), or is `DENY` when none is.

Throttles (`guardrails.throttles`) are checked last, on the final route: any
bucket refusing the request's priority class makes it `THROTTLE`
(`throttle:NAME`) with the time until every bucket would let the class pass; a
request too big for a bucket to ever pass is `DENY`. Tokens are drawn only when
the decision lets the call run and it is not a dry run (`RouteContext.commit`).
Blocked paths are a candidate filter (see `candidates`).

Pure: must not import gRPC or the wire types (`faregate.v1`), nor read a clock.
"""

from __future__ import annotations

from faregate.model import Action
from sidecar.context import RouteContext, refuse
from sidecar.decision import Decision
from sidecar.routing import step_down
from sidecar.throttle import BucketCheck, CompiledThrottle


def limit_tokens(ctx: RouteContext) -> Decision | None:
    """Find the ceilings that apply; refuse oversized input, cap the output."""
    if not ctx.compiled.ceilings:
        return None
    request = ctx.request
    priority = request.priority.value
    ctx.ceilings = applicable = [
        c
        for c in ctx.compiled.ceilings
        if c.match.matches(request.capability, request.tenant, request.team, priority)
    ]
    over = [
        c for c in applicable if c.max_input_tokens and request.input_tokens > c.max_input_tokens
    ]
    if over:
        for ceiling in over:
            ctx.fire(
                f"ceiling:{ceiling.name}.max_input_tokens",
                f"{request.input_tokens} input tokens > {ceiling.max_input_tokens}",
            )
        names = ", ".join(c.name for c in over)
        return refuse(
            ctx,
            Action.DENY,
            f"input of {request.input_tokens} tokens is over the ceiling of {names}",
        )
    for ceiling in applicable:
        if ceiling.max_output_tokens and ctx.max_output_tokens > ceiling.max_output_tokens:
            ctx.fire(
                f"ceiling:{ceiling.name}.max_output_tokens",
                f"output capped from {ctx.max_output_tokens} to {ceiling.max_output_tokens} tokens",
            )
            ctx.max_output_tokens = ceiling.max_output_tokens
    costs = [c.max_cost_nanos for c in applicable if c.max_cost_nanos]
    ctx.cost_limit = min(costs) if costs else None
    return None


def enforce_cost_ceilings(ctx: RouteContext) -> Decision | None:
    """Walk down the downgrade chain until the route is within every cost ceiling."""
    limit = ctx.cost_limit
    current = ctx.chosen
    assert current is not None
    if limit is None or current.worst_case_cost_nanos <= limit:
        return None
    cost = current.worst_case_cost_nanos
    lower = step_down(ctx, current, lambda c: c.worst_case_cost_nanos <= limit)
    binding = [c for c in ctx.ceilings if c.max_cost_nanos and cost > c.max_cost_nanos]
    for ceiling in binding:
        outcome = (
            f"down the chain to {lower.model.name} at {lower.worst_case_cost_nanos}"
            if lower is not None
            else "nothing down the chain is under it"
        )
        ctx.fire(
            f"ceiling:{ceiling.name}.max_cost",
            f"{current.model.name} at {cost} nanos worst case > {ceiling.max_cost_nanos}; "
            + outcome,
        )
    names = ", ".join(c.name for c in binding)
    if lower is None:
        return refuse(
            ctx,
            Action.DENY,
            f"no model of capability {ctx.capability.name!r} down the downgrade chain is "
            f"within the cost ceiling of {names}",
        )
    ctx.chosen = lower
    ctx.reason = (
        f"downgraded from {current.model.name} to {lower.model.name} "
        f"to stay within the cost ceiling of {names}"
    )
    return None


def apply_throttles(ctx: RouteContext) -> Decision | None:
    """THROTTLE when a bucket would not let this priority class through now."""
    throttles = ctx.compiled.throttles
    if not throttles:
        return None
    request = ctx.request
    chosen = ctx.chosen
    assert chosen is not None
    priority = request.priority.value
    tokens = request.input_tokens + chosen.max_output_tokens
    checks: list[BucketCheck] = []
    refused: list[tuple[CompiledThrottle, list[BucketCheck]]] = []
    for throttle in throttles:
        if not throttle.rule.match.matches(
            request.capability, request.tenant, request.team, priority
        ):
            continue
        answers = ctx.runtime.throttles.check(
            throttle, request.tenant, request.capability, priority, tokens, ctx.now_ms
        )
        checks += answers
        failed = [a for a in answers if not a.passes]
        if failed:
            refused.append((throttle, failed))
    if not refused:
        ctx.throttle_checks = checks
        return None
    for throttle, failed in refused:
        ctx.fire(f"throttle:{throttle.rule.name}", "; ".join(a.explain(priority) for a in failed))
    names = ", ".join(t.rule.name for t, _ in refused)
    if any(a.never for _, failed in refused for a in failed):
        return refuse(
            ctx,
            Action.DENY,
            f"{priority} request of {tokens} tokens can never pass throttle {names}",
        )
    retry_after_ms = max(a.wait_ms for a in checks)
    return refuse(
        ctx,
        Action.THROTTLE,
        f"throttled by {names}: {priority} traffic may retry in {retry_after_ms} ms",
        retry_after_ms=retry_after_ms,
    )
