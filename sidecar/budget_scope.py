"""Which budgets cover a request, and how much a call reserves from each.

A budget covers a request when every scope key it sets matches: tenant, team,
capability, the routed model and its tier, and each label; an empty key matches
everything (docs/budgets.md, "Configuration"). A request must fit every budget
that covers it. Because the model and tier are scope keys, the covering set is a
property of the request *on a route*: stepping down the downgrade chain can
change it.

What a call reserves depends on the budget's mode: `strict` reserves the worst
case (the candidate's worst-case cost, already computed by the engine), which
bounds the actual cost, so strict budgets never overshoot; `estimate` reserves
input at the input price plus half the output cap at the output price, and accepts that a
call may cost more than it reserved (the overshoot the budget's mode allows).

The soft threshold is the lowest configured fraction of the limit, rounded up to
a whole nano (the limit itself when none is configured).

Pure: must not import gRPC or the wire types (`faregate.v1`), nor read a clock.
"""

from __future__ import annotations

from collections.abc import Mapping

from faregate.model import Budget
from faregate.pricing import cost_nanos
from sidecar.decision import Candidate

STRICT = "strict"
ESTIMATE = "estimate"


def covers(
    budget: Budget,
    tenant: str,
    team: str,
    capability: str,
    model: str,
    tier: str,
    labels: Mapping[str, str],
) -> bool:
    """Does `budget`'s scope take in a call with these keys?"""
    return (
        (not budget.tenant or budget.tenant == tenant)
        and (not budget.team or budget.team == team)
        and (not budget.capability or budget.capability == capability)
        and (not budget.model or budget.model == model)
        and (not budget.tier or budget.tier == tier)
        and all(labels.get(k) == v for k, v in budget.labels.items())
    )


def estimated_cost_nanos(candidate: Candidate, input_tokens: int) -> int:
    """Input at full price plus half the output cap: what an `estimate` budget reserves."""
    half_output = (candidate.max_output_tokens + 1) // 2
    return cost_nanos(candidate.model.price, input_tokens, 0, half_output)


def reservation_nanos(budget: Budget, candidate: Candidate, input_tokens: int) -> int:
    """What a call on `candidate` reserves from `budget`'s lease, per the budget's mode."""
    if budget.mode == ESTIMATE:
        # Never more than the worst case: the estimate only ever relaxes strict.
        return min(estimated_cost_nanos(candidate, input_tokens), candidate.worst_case_cost_nanos)
    return candidate.worst_case_cost_nanos
