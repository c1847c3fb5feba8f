"""The budget step of the engine: soft pressure, then fitting the route into the leases.

Runs after ranking and cost ceilings (docs/policy.md, "Decision order"):

1. Soft pressure (`routing.relieve_budget_pressure`, through the `BudgetPressure`
   interface): a covering budget past its soft threshold steps one model down
   the chain (`downgrade:budget-soft`).
2. Leases: every budget covering the request on the chosen route must have room
   for the call's reservation (worst case for `strict` budgets, the estimate for
   `estimate` ones; `budget_scope`). If all do, the holds are planned and taken
   from the leases only when the decision lets the call run (`RouteContext.commit`),
   never on a dry run. Otherwise:
   - no lease yet for a budget (the first request in a period, or just after a
     start): `THROTTLE` with a short `retry_after_ms`, and the book asks for one
     at once. The control link asks for every budget of a snapshot when it is
     applied, so a caller rarely sees this (`budget:NAME.no-lease`);
   - the lease lapsed and its offline policy admits nothing more: `DENY`
     (`budget:NAME.lease-expired`);
   - the lease is short while a top-up may still come for every short budget:
     `THROTTLE` (`budget:NAME.topping-up`), so a call is not downgraded for a
     round trip's delay; once the control plane's last grant gave less than asked
     (the budget is running out): the first model down the chain that is cheaper
     and fits every covering lease (`downgrade:lease-short`), else `DENY`
     (`budget:NAME.exhausted`) — or `THROTTLE` while another budget tops up.

A refused call (and a dry run) reserves nothing. A budget refusing a call is
noted in the lease book (not on dry runs), so it asks for more soon.
Pure: must not import gRPC or the wire types (`faregate.v1`), nor read a clock.
"""

from __future__ import annotations

from faregate.model import Action, Budget
from faregate.pricing import format_usd
from sidecar.budget_scope import covers, reservation_nanos
from sidecar.context import RouteContext, refuse
from sidecar.decision import Candidate, Decision
from sidecar.leases import Check, Hold, LeaseBook, Verdict
from sidecar.routing import relieve_budget_pressure, step_down

NO_LEASE_RETRY_MS = 50
TOPUP_RETRY_MS = 100

_Refusal = tuple[Budget, int, Check]


def fit(
    ctx: RouteContext, book: LeaseBook, candidate: Candidate
) -> tuple[tuple[Hold, ...], list[_Refusal]]:
    """The holds a call on `candidate` would take, and the budgets it does not fit."""
    request = ctx.request
    model = candidate.model
    holds: list[Hold] = []
    refused: list[_Refusal] = []
    for budget in ctx.compiled.budgets:
        if not covers(
            budget,
            request.tenant,
            request.team,
            request.capability,
            model.name,
            model.tier,
            request.labels,
        ):
            continue
        amount = reservation_nanos(budget, candidate, request.input_tokens)
        check = book.check(budget, amount, ctx.mono_ms, ctx.now_ms)
        if check.hold is not None:
            holds.append(check.hold)
        else:
            refused.append((budget, amount, check))
    return tuple(holds), refused


def enforce_budgets(ctx: RouteContext) -> Decision | None:
    relieve_budget_pressure(ctx)
    book = ctx.runtime.leases
    if book is None or not ctx.compiled.budgets:
        return None
    current = ctx.chosen
    assert current is not None
    holds, refused = fit(ctx, book, current)
    if not refused:
        ctx.holds = holds
        return None
    if not ctx.request.dry_run:
        for budget, amount, _ in refused:
            book.note_need(budget, amount)
    missing = [r for r in refused if r[2].verdict is Verdict.NO_LEASE]
    if missing:
        for budget, _, _ in missing:
            ctx.fire(f"budget:{budget.name}.no-lease", "no lease granted yet; one is requested")
        names = ", ".join(b.name for b, _, _ in missing)
        return refuse(
            ctx,
            Action.THROTTLE,
            f"waiting for a lease on budget {names}; retry in {NO_LEASE_RETRY_MS} ms",
            retry_after_ms=NO_LEASE_RETRY_MS,
        )
    expired = [r for r in refused if r[2].verdict is Verdict.EXPIRED]
    if expired:
        for budget, _, _ in expired:
            policy = budget.offline_policy
            ctx.fire(
                f"budget:{budget.name}.lease-expired",
                f"the lease lapsed and the offline policy ({policy}) admits nothing more",
            )
        names = ", ".join(b.name for b, _, _ in expired)
        return refuse(
            ctx,
            Action.DENY,
            f"the lease on budget {names} expired: no authority to spend until renewed",
        )
    return _short(ctx, book, current, refused)


def _short(
    ctx: RouteContext, book: LeaseBook, current: Candidate, refused: list[_Refusal]
) -> Decision | None:
    cost, limit = current.worst_case_cost_nanos, ctx.cost_limit
    found: list[tuple[Hold, ...]] = []

    def fits(candidate: Candidate) -> bool:
        price = candidate.worst_case_cost_nanos
        if price >= cost or (limit is not None and price > limit):
            return False
        holds, still = fit(ctx, book, candidate)
        if still:
            return False
        found.append(holds)
        return True

    short = ", ".join(
        f"{budget.name} has {format_usd(max(0, check.left_nanos), 6)} left of its lease, "
        f"{format_usd(amount, 6)} needed"
        for budget, amount, check in refused
    )
    waiting = [r for r in refused if book.topping_up(r[0].name)]
    # A lease that is short only because its top-up is still on the way is not a
    # shortage of budget: wait for it rather than downgrade a call that fits.
    lower = None if len(waiting) == len(refused) else step_down(ctx, current, fits)
    if lower is not None:
        ctx.fire(
            "downgrade:lease-short",
            f"{short}; {current.model.name} -> {lower.model.name}",
        )
        ctx.chosen = lower
        ctx.holds = found[-1]
        ctx.reason = (
            f"downgraded from {current.model.name} to {lower.model.name}: "
            f"the lease on budget {refused[0][0].name} is short"
        )
        return None
    if waiting:
        for budget, _, _ in waiting:
            ctx.fire(f"budget:{budget.name}.topping-up", f"{short}; more is requested")
        names = ", ".join(b.name for b, _, _ in waiting)
        return refuse(
            ctx,
            Action.THROTTLE,
            f"the lease on budget {names} is being topped up; retry in {TOPUP_RETRY_MS} ms",
            retry_after_ms=TOPUP_RETRY_MS,
        )
    for budget, _, _ in refused:
        ctx.fire(f"budget:{budget.name}.exhausted", short)
    names = ", ".join(b.name for b, _, _ in refused)
    return refuse(
        ctx,
        Action.DENY,
        f"budget {names} exhausted: nothing down the downgrade chain fits what is left",
    )
