"""The decision engine: which model serves a request, and whether it may run at all.

A decision is a pipeline of small steps over a `RouteContext`. Each filter step
removes candidate models and, when it removes any, records a named rule saying
which and why; the final step picks a model. Nothing left after a step means
`DENY`, with the rules as the reason. Later steps (routing strategies,
guardrails, throttles, budgets, governance) slot into `DEFAULT_STEPS`.

Pure: plain functions over frozen dataclasses and the shared `faregate.model`.
Must not import gRPC, the wire types (`faregate.v1`), or read a clock or a random
source: the decision id comes in with the call, and whatever needs time later gets
it through the context.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from faregate.model import (
    Action,
    Capability,
    Complexity,
    Locality,
    Model,
    Priority,
    RiskLevel,
    Sensitivity,
    Snapshot,
)
from faregate.pricing import worst_case_cost_nanos

NO_LABELS: Mapping[str, str] = MappingProxyType({})


def no_labels() -> Mapping[str, str]:
    """Default factory: dataclasses refuse a mappingproxy as a plain default."""
    return NO_LABELS


class RequestError(ValueError):
    """A request that cannot be decided as sent; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RuleFired(NamedTuple):
    """One rule that shaped a decision, named as operators know it."""

    rule: str
    detail: str


@dataclass(frozen=True, slots=True)
class RouteRequest:
    capability: str
    tenant: str = ""
    team: str = ""
    sensitivity: Sensitivity = Sensitivity.INTERNAL
    risk: RiskLevel = RiskLevel.LOW
    priority: Priority = Priority.INTERACTIVE
    complexity: Complexity = Complexity.UNSPECIFIED
    complexity_score: float | None = None
    input_tokens: int = 0
    max_output_tokens: int = 0
    labels: Mapping[str, str] = field(default_factory=no_labels)
    idempotency_key: str = ""
    approval_id: str = ""
    required_compliance_tags: tuple[str, ...] = ()
    trace_id: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    action: Action
    config_version: str
    model: str = ""
    provider: str = ""
    tier: str = ""
    estimated_cost_nanos: int = 0
    reserved_cost_nanos: int = 0
    max_output_tokens: int = 0
    rules: tuple[RuleFired, ...] = ()
    approval_id: str = ""
    retry_after_ms: int = 0
    reason: str = ""

    @property
    def allows_call(self) -> bool:
        return self.action in (Action.ALLOW, Action.DOWNGRADE)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model still in the running, with what a call on it may cost at most."""

    model: Model
    max_output_tokens: int
    worst_case_cost_nanos: int


@dataclass(slots=True)
class RouteContext:
    """What the steps share while one request is decided; lives for one call only."""

    snapshot: Snapshot
    request: RouteRequest
    capability: Capability
    decision_id: str
    # The request's output cap, or the capability default; each candidate may lower it.
    max_output_tokens: int
    candidates: list[Candidate]
    rules: list[RuleFired] = field(default_factory=list)


# A step either narrows the context and returns None, or ends the decision.
Step = Callable[[RouteContext], Decision | None]


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
    if request.input_tokens < 0:
        raise RequestError("input_tokens", "must not be negative")
    if request.max_output_tokens < 0:
        raise RequestError("max_output_tokens", "must not be negative")
    score = request.complexity_score
    # NaN compares false to everything, so it must be rejected explicitly.
    if score is not None and not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise RequestError("complexity_score", f"must be between 0 and 1, got {score}")
    return capability


def _candidates(
    snapshot: Snapshot, capability: Capability, input_tokens: int, max_output_tokens: int
) -> tuple[list[Candidate], list[str]]:
    """The capability's candidates in configured order, and names the catalog lacks."""
    found: list[Candidate] = []
    missing: list[str] = []
    for name in capability.candidates:
        model = snapshot.models_by_name.get(name)
        if model is None:
            missing.append(name)
            continue
        output = min(max_output_tokens, model.max_output_tokens)
        found.append(Candidate(model, output, worst_case_cost_nanos(model, input_tokens, output)))
    return found, missing


def _narrow(
    ctx: RouteContext,
    rule: str,
    keep: Callable[[Candidate], bool],
    why: Callable[[Candidate], str],
) -> None:
    kept = [c for c in ctx.candidates if keep(c)]
    if len(kept) == len(ctx.candidates):
        return
    removed = ", ".join(f"{c.model.name} ({why(c)})" for c in ctx.candidates if not keep(c))
    ctx.rules.append(RuleFired(rule, f"removed {removed}"))
    ctx.candidates = kept


def drop_unavailable(ctx: RouteContext) -> None:
    _narrow(ctx, "model:unavailable", lambda c: not c.model.unavailable, lambda c: "unavailable")


def _sensitivity_allows(model: Model, sensitivity: Sensitivity) -> bool:
    if sensitivity in (Sensitivity.PUBLIC, Sensitivity.INTERNAL):
        return True
    # Confidential and regulated data stay in house unless the model is certified for it.
    return model.locality is Locality.LOCAL or sensitivity.value in model.compliance_tags


def restrict_by_sensitivity(ctx: RouteContext) -> None:
    sensitivity = ctx.request.sensitivity
    _narrow(
        ctx,
        f"sensitivity:{sensitivity.value}->local-only",
        lambda c: _sensitivity_allows(c.model, sensitivity),
        lambda c: f"{c.model.locality.value}, not tagged {sensitivity.value!r}",
    )


def require_compliance_tags(ctx: RouteContext) -> None:
    required = ctx.request.required_compliance_tags

    def missing(candidate: Candidate) -> list[str]:
        return [tag for tag in required if tag not in candidate.model.compliance_tags]

    _narrow(
        ctx,
        "compliance:required-tags",
        lambda c: not missing(c),
        lambda c: "missing " + ", ".join(repr(tag) for tag in missing(c)),
    )


def fit_context_window(ctx: RouteContext) -> None:
    input_tokens = ctx.request.input_tokens
    _narrow(
        ctx,
        "context-window:too-small",
        lambda c: input_tokens + c.max_output_tokens <= c.model.context_window,
        lambda c: (
            f"window {c.model.context_window} < {input_tokens} in + {c.max_output_tokens} out"
        ),
    )


def choose_cheapest(ctx: RouteContext) -> Decision:
    """The lowest worst-case cost wins; `min` keeps the first, so ties go to config order."""
    chosen = min(ctx.candidates, key=lambda c: c.worst_case_cost_nanos)
    ctx.rules.append(
        RuleFired(
            "routing:cheapest",
            f"{chosen.model.name} at {chosen.worst_case_cost_nanos} nanos worst case, "
            f"cheapest of {len(ctx.candidates)}",
        )
    )
    return Decision(
        decision_id=ctx.decision_id,
        action=Action.ALLOW,
        config_version=ctx.snapshot.version,
        model=chosen.model.name,
        provider=chosen.model.provider,
        tier=chosen.model.tier,
        estimated_cost_nanos=chosen.worst_case_cost_nanos,
        # Nothing is reserved until budgets and leases exist; the estimate is the worst case.
        reserved_cost_nanos=0,
        max_output_tokens=chosen.max_output_tokens,
        rules=tuple(ctx.rules),
        reason=f"cheapest allowed model for {ctx.capability.name}",
    )


DEFAULT_STEPS: tuple[Step, ...] = (
    drop_unavailable,
    restrict_by_sensitivity,
    require_compliance_tags,
    fit_context_window,
    choose_cheapest,
)


def _deny(ctx: RouteContext) -> Decision:
    why = "; ".join(f"{rule.rule}: {rule.detail}" for rule in ctx.rules) or "no candidates"
    return Decision(
        decision_id=ctx.decision_id,
        action=Action.DENY,
        config_version=ctx.snapshot.version,
        max_output_tokens=ctx.max_output_tokens,
        rules=tuple(ctx.rules),
        reason=f"no model of capability {ctx.capability.name!r} can serve this request: {why}",
    )


def decide(
    snapshot: Snapshot,
    request: RouteRequest,
    decision_id: str,
    steps: Sequence[Step] = DEFAULT_STEPS,
) -> Decision:
    """Decide one request against one snapshot. Raises RequestError on invalid input."""
    capability = validate(snapshot, request)
    max_output = request.max_output_tokens or capability.default_max_output_tokens
    candidates, missing = _candidates(snapshot, capability, request.input_tokens, max_output)
    ctx = RouteContext(snapshot, request, capability, decision_id, max_output, candidates)
    if missing:
        # A validated snapshot never gets here; say so rather than fail obscurely.
        ctx.rules.append(RuleFired("model:unknown", "not in the catalog: " + ", ".join(missing)))
    for step in steps:
        if not ctx.candidates:
            return _deny(ctx)
        decision = step(ctx)
        if decision is not None:
            return decision
    return _deny(ctx)
