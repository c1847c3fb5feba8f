"""Routing: which allowed candidate a capability prefers, and where it steps down to.

Strategies (`capabilities[].routing.strategy`), each over the candidates that
survived filtering, ties going to configured order:
- `cheapest` (default): lowest worst-case cost.
- `cheapest-qualified`: cheapest whose `quality[capability]` reaches
  `quality_floor` (an unrated model has quality 0); none → `DENY`
  (`quality-floor:CAPABILITY`).
- `complexity-tiers`: the request's complexity (a score maps to low below 0.25,
  medium below 0.5, high below 0.8, else reasoning; none given is medium) picks
  tiers from `complexity_tiers`; cheapest within them, or cheapest overall when
  none is left there (`complexity:fallback`).
- `ordered`: the first allowed candidate in configured order.

The downgrade chain is the explicit `downgrade_chain` restricted to allowed
candidates, else the allowed candidates by descending worst-case cost. Ceilings
walk down it; budget pressure steps one model down it, to the next model that is
cheaper than the current route and within every cost ceiling that applies.

Pure: must not import gRPC or the wire types (`faregate.v1`), nor read a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from faregate.model import Action, Complexity
from sidecar.context import RouteContext, refuse
from sidecar.decision import Candidate, Decision, RouteRequest

_LEVEL_BOUNDS = ((0.25, "low"), (0.5, "medium"), (0.8, "high"))


def complexity_level(request: RouteRequest) -> str:
    """The request's complexity level; a score, when given, overrides the enum."""
    score = request.complexity_score
    if score is not None:
        for bound, level in _LEVEL_BOUNDS:
            if score < bound:
                return level
        return Complexity.REASONING.value
    return request.complexity.value or Complexity.MEDIUM.value


def _cheapest(candidates: Sequence[Candidate]) -> Candidate:
    # `min` keeps the first of equals, so ties go to configured order.
    best = candidates[0]
    for candidate in candidates:
        if candidate.worst_case_cost_nanos < best.worst_case_cost_nanos:
            best = candidate
    return best


def _quality(candidate: Candidate, capability: str) -> float | None:
    return candidate.model.quality.get(capability)


def rank(ctx: RouteContext) -> Decision | None:
    """Pick the strategy's first choice among the allowed candidates."""
    candidates = ctx.candidates
    strategy = ctx.compiled.strategy
    name = ctx.capability.name
    if strategy == "cheapest-qualified":
        floor = ctx.compiled.quality_floor
        qualified = [c for c in candidates if (_quality(c, name) or 0.0) >= floor]
        if not qualified:
            rated = ", ".join(
                f"{c.model.name} ({q if (q := _quality(c, name)) is not None else 'unrated'})"
                for c in candidates
            )
            ctx.fire(f"quality-floor:{name}", f"none of {rated} reaches {floor:g}")
            return refuse(
                ctx,
                Action.DENY,
                f"no allowed model of capability {name!r} meets its quality floor {floor:g}",
            )
        chosen = _cheapest(qualified)
        ctx.fire(
            "routing:cheapest-qualified",
            f"{chosen.model.name} at {chosen.worst_case_cost_nanos} nanos worst case, "
            f"cheapest of {len(qualified)} with quality >= {floor:g}",
        )
        ctx.reason = f"cheapest allowed model of {name} meeting quality {floor:g}"
    elif strategy == "complexity-tiers":
        level = complexity_level(ctx.request)
        tiers = ctx.compiled.complexity_tiers.get(level, frozenset())
        in_tiers = [c for c in candidates if c.model.tier in tiers]
        listed = ", ".join(sorted(tiers)) or "none configured"
        if in_tiers:
            chosen = _cheapest(in_tiers)
            ctx.fire(
                "routing:complexity-tiers",
                f"{chosen.model.name} ({chosen.model.tier}) for {level} complexity, "
                f"cheapest of {len(in_tiers)} in tiers {listed}",
            )
            ctx.reason = f"cheapest allowed {chosen.model.tier} model for {level} {name}"
        else:
            chosen = _cheapest(candidates)
            ctx.fire(
                "complexity:fallback",
                f"no allowed model in tiers {listed} for {level} complexity; "
                f"{chosen.model.name} is the cheapest of {len(candidates)} overall",
            )
            ctx.reason = f"cheapest allowed model for {name} (no {level} tier model allowed)"
    elif strategy == "ordered":
        chosen = candidates[0]
        ctx.fire("routing:ordered", f"{chosen.model.name}, first allowed in configured order")
        ctx.reason = f"first allowed model for {name} in configured order"
    else:
        chosen = _cheapest(candidates)
        ctx.fire(
            "routing:cheapest",
            f"{chosen.model.name} at {chosen.worst_case_cost_nanos} nanos worst case, "
            f"cheapest of {len(candidates)}",
        )
        ctx.reason = f"cheapest allowed model for {name}"
    ctx.first = ctx.chosen = chosen
    return None


def downgrade_chain(ctx: RouteContext) -> list[Candidate]:
    """Allowed candidates from most to least expensive, or as the explicit chain orders them."""
    explicit = ctx.compiled.downgrade_chain
    if explicit:
        by_name = {c.model.name: c for c in ctx.candidates}
        return [by_name[n] for n in explicit if n in by_name]
    # Stable sort: equal costs keep configured order.
    return sorted(ctx.candidates, key=lambda c: -c.worst_case_cost_nanos)


def step_down(
    ctx: RouteContext, current: Candidate, accept: Callable[[Candidate], bool]
) -> Candidate | None:
    """The first model below `current` in the chain that `accept`s; from the top of the
    chain when `current` is not on it."""
    chain = downgrade_chain(ctx)
    start = 0
    for index, candidate in enumerate(chain):
        if candidate.model.name == current.model.name:
            start = index + 1
            break
    for candidate in chain[start:]:
        if accept(candidate):
            return candidate
    return None


def relieve_budget_pressure(ctx: RouteContext) -> Decision | None:
    """One model down the chain when a budget covering the route is under pressure."""
    current = ctx.chosen
    assert current is not None
    pressure = ctx.runtime.pressure.pressure(ctx.snapshot, ctx.request, current, ctx.now_ms)
    if pressure is None:
        return None
    cost, limit = current.worst_case_cost_nanos, ctx.cost_limit
    lower = step_down(
        ctx,
        current,
        lambda c: (
            c.worst_case_cost_nanos < cost and (limit is None or c.worst_case_cost_nanos <= limit)
        ),
    )
    if lower is None:
        ctx.fire(
            "downgrade:budget-soft",
            f"{pressure.reason}; nothing cheaper than {current.model.name} down the chain",
        )
        return None
    ctx.fire(
        "downgrade:budget-soft",
        f"{pressure.reason}; {current.model.name} -> {lower.model.name} "
        f"({cost} -> {lower.worst_case_cost_nanos} nanos worst case)",
    )
    ctx.chosen = lower
    ctx.reason = (
        f"downgraded from {current.model.name} to {lower.model.name}: "
        f"budget {pressure.budget} is under pressure"
    )
    return None
