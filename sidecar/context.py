"""What the engine's steps share: one request's context, and the state kept between requests.

`RouteContext` lives for one decision: the compiled policy of the snapshot being
served, the request, the candidates still in the running, the route picked so far
and the rules fired, in order. `Runtime` is what outlives a request: throttle
buckets, the approval book, the budget-pressure source, the lease book and the approval
id generator; the decider owns it and hands it in, with the time (`now_ms`, and
`mono_ms` for lease deadlines), so that no step ever reads a clock. Effects
(throttle tokens, an approval use, lease reservations) are only planned in the
context and applied by `commit`, for decisions that let the call run. The
decision builders at the bottom give every answer the same shape: rules,
estimated cost, config version and a one-line reason.

Pure: must not import gRPC or the wire types (`faregate.v1`), nor read a clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from faregate.model import Action, Capability, Snapshot
from faregate.policy import Ceiling
from sidecar.approvals import ApprovalBook
from sidecar.compiled import CompiledCapability, CompiledPolicy
from sidecar.decision import Candidate, Decision, RouteRequest, RuleFired
from sidecar.leases import Hold, LeaseBook
from sidecar.pressure import NO_PRESSURE, BudgetPressure
from sidecar.throttle import BucketCheck, ThrottleBook


@dataclass(slots=True)
class Runtime:
    """State the engine reads and changes across requests; owned by the decider."""

    throttles: ThrottleBook
    approvals: ApprovalBook
    new_approval_id: Callable[[], str]
    pressure: BudgetPressure = NO_PRESSURE
    # Budget leases; None: budgets are not enforced (no control plane to grant them).
    leases: LeaseBook | None = None

    @classmethod
    def fresh(
        cls, pressure: BudgetPressure = NO_PRESSURE, leases: LeaseBook | None = None
    ) -> Runtime:
        """Empty buckets and book, numbered approval ids: for one-off engine calls and tests."""
        counter = itertools.count(1)
        return cls(
            ThrottleBook(), ApprovalBook(), lambda: f"approval-{next(counter)}", pressure, leases
        )


@dataclass(slots=True)
class RouteContext:
    """What the steps share while one request is decided; lives for one call only."""

    snapshot: Snapshot
    policy: CompiledPolicy
    compiled: CompiledCapability
    request: RouteRequest
    decision_id: str
    now_ms: int
    runtime: Runtime
    # The request's output cap, or the capability default, lowered by ceilings; each
    # candidate may lower it further to its own maximum.
    max_output_tokens: int
    candidates: list[Candidate] = field(default_factory=list)
    rules: list[RuleFired] = field(default_factory=list)
    first: Candidate | None = None  # the routing strategy's pick
    chosen: Candidate | None = None  # the route after ceilings and budget pressure
    reason: str = ""
    ceilings: list[Ceiling] = field(default_factory=list)  # those matching the request
    cost_limit: int | None = None  # the lowest cost ceiling that applies, if any
    # Effects that happen only if the call may run, and never on a dry run.
    approval_use: str = ""
    throttle_checks: list[BucketCheck] = field(default_factory=list)
    holds: tuple[Hold, ...] = ()  # what the route would reserve from each budget's lease
    # Monotonic time for lease deadlines (`now_ms` is wall time, for periods and records).
    mono_ms: int = 0

    @property
    def capability(self) -> Capability:
        return self.compiled.capability

    def fire(self, rule: str, detail: str) -> None:
        self.rules.append(RuleFired(rule, detail))

    def commit(self) -> None:
        """Apply the effects of a decision that lets the call run."""
        if self.throttle_checks:
            self.runtime.throttles.take(self.throttle_checks, self.now_ms)
        if self.approval_use:
            self.runtime.approvals.use(self.approval_use)
        if self.holds and self.runtime.leases is not None:
            self.runtime.leases.take(self.holds, self.mono_ms)


def refuse(
    ctx: RouteContext,
    action: Action,
    reason: str,
    *,
    approval_id: str = "",
    retry_after_ms: int = 0,
) -> Decision:
    """A decision that does not let the call run (DENY, THROTTLE, APPROVAL_REQUIRED).

    The route it would have taken is in the rules and the estimate, not in `model`,
    so nobody mistakes it for permission (and Report does not price it)."""
    chosen = ctx.chosen
    return Decision(
        decision_id=ctx.decision_id,
        action=action,
        config_version=ctx.snapshot.version,
        estimated_cost_nanos=chosen.worst_case_cost_nanos if chosen is not None else 0,
        max_output_tokens=chosen.max_output_tokens if chosen is not None else ctx.max_output_tokens,
        rules=tuple(ctx.rules),
        approval_id=approval_id,
        retry_after_ms=retry_after_ms,
        reason=reason,
    )


def deny_nothing_left(ctx: RouteContext) -> Decision:
    """DENY when no candidate survives, naming every rule that removed some."""
    why = "; ".join(f"{rule.rule}: {rule.detail}" for rule in ctx.rules) or "no candidates"
    return refuse(
        ctx,
        Action.DENY,
        f"no model of capability {ctx.capability.name!r} can serve this request: {why}",
    )


def allow(ctx: RouteContext) -> Decision:
    """ALLOW the chosen route, or DOWNGRADE when it is not the strategy's first pick."""
    chosen = ctx.chosen
    assert chosen is not None and ctx.first is not None
    model = chosen.model
    downgraded = model.name != ctx.first.model.name
    # A dry run reserves nothing (it never commits), so it must not say it did.
    holds = () if ctx.request.dry_run else ctx.holds
    return Decision(
        decision_id=ctx.decision_id,
        action=Action.DOWNGRADE if downgraded else Action.ALLOW,
        config_version=ctx.snapshot.version,
        model=model.name,
        provider=model.provider,
        tier=model.tier,
        estimated_cost_nanos=chosen.worst_case_cost_nanos,
        reserved_cost_nanos=max((h.amount_nanos for h in holds), default=0),
        max_output_tokens=chosen.max_output_tokens,
        rules=tuple(ctx.rules),
        reason=ctx.reason,
        reservation=holds,
    )
