"""The engine's budget step: soft pressure, lease fit, refusals that name the budget."""

from __future__ import annotations

import dataclasses

from faregate.model import Action, Budget, Capability, RoutingPolicy
from faregate.periods import period_key
from sidecar.context import Runtime
from sidecar.decision import Decision, RouteRequest
from sidecar.engine import decide
from sidecar.leases import Grant, LeaseBook
from tests.unit.sidecar.catalog import T0, make_snapshot, rule_names

# Worst cases for 1,000 tokens in and 500 out: big 10_500_000, tagged 600_000,
# local 550_000, small 450_000, tiny 300_000.
ORDERED = Capability(
    "chat", "", 500, ("big", "small", "tiny", "local", "tagged"), RoutingPolicy("ordered")
)
CHAT_DAILY = Budget("chat-daily", 100_000_000, "day", capability="chat", soft_thresholds=(0.8,))
OPS = Budget("ops", 100_000_000, "day", team="ops")
REQUEST = RouteRequest("chat", tenant="acme", team="ops", input_tokens=1_000)
MONO = 5_000


class Harness:
    def __init__(self, *budgets: Budget) -> None:
        self.snapshot = make_snapshot(capabilities=(ORDERED,), budgets=budgets)
        self.book = LeaseBook("inc-1")
        self.book.configure(budgets)
        self.runtime = Runtime.fresh(self.book, self.book)
        self.ids = 0

    def grant(self, budget: Budget, granted: int, **kw: object) -> None:
        key = period_key(budget.period, budget.time_zone, T0)
        grant = Grant(budget.name, f"ls-{budget.name}", granted, 30_000, period_key=key, **kw)  # type: ignore[arg-type]
        self.book.apply_grant(grant, MONO, T0)

    def route(self, request: RouteRequest = REQUEST) -> Decision:
        self.ids += 1
        return decide(
            self.snapshot, request, f"d-{self.ids}", now_ms=T0, mono_ms=MONO, runtime=self.runtime
        )

    def reserved(self) -> int:
        return sum(v.reserved_nanos for v in self.book.leases(MONO))


def test_an_admitted_call_reserves_its_worst_case_from_every_covering_lease() -> None:
    h = Harness(CHAT_DAILY, OPS)
    h.grant(CHAT_DAILY, 50_000_000)
    h.grant(OPS, 50_000_000)
    decision = h.route()
    assert (decision.action, decision.model) == (Action.ALLOW, "big")
    assert decision.reserved_cost_nanos == 10_500_000
    assert {hold.budget for hold in decision.reservation} == {"chat-daily", "ops"}
    assert h.reserved() == 21_000_000


def test_estimate_mode_reserves_input_plus_half_the_output_cap() -> None:
    estimate = dataclasses.replace(OPS, mode="estimate")
    h = Harness(estimate)
    h.grant(estimate, 50_000_000)
    decision = h.route()
    # big: 1,000 x $3/M + 250 x $15/M = 3_000_000 + 3_750_000.
    assert decision.reserved_cost_nanos == 6_750_000


def test_soft_threshold_from_the_grant_walks_down_the_chain() -> None:
    h = Harness(CHAT_DAILY)
    h.grant(CHAT_DAILY, 50_000_000, soft_threshold_crossed=True)
    decision = h.route()
    assert (decision.action, decision.model) == (Action.DOWNGRADE, "tagged")
    assert "downgrade:budget-soft" in rule_names(decision)


def test_local_spend_past_the_threshold_counts_as_pressure_before_the_next_grant() -> None:
    h = Harness(CHAT_DAILY)
    h.grant(CHAT_DAILY, 99_000_000, budget_committed_nanos=70_000_000)
    first = h.route()
    h.book.settle(first.reservation, 10_500_000, MONO)  # 80.5M committed, about
    assert h.route().model == "tagged"


def test_a_short_lease_steps_down_to_a_model_that_fits() -> None:
    h = Harness(OPS)
    h.book.requests(MONO, T0)
    h.grant(OPS, 1_000_000, reason="budget exhausted")  # less than asked: running out
    decision = h.route()
    assert (decision.action, decision.model) == (Action.DOWNGRADE, "tagged")
    assert "downgrade:lease-short" in rule_names(decision)
    assert decision.reserved_cost_nanos == 600_000


def test_a_lease_short_only_until_its_top_up_arrives_waits_instead_of_downgrading() -> None:
    h = Harness(OPS)
    h.grant(OPS, 1_000_000)  # nothing asked was refused: more may come
    decision = h.route()
    assert decision.action is Action.THROTTLE and decision.retry_after_ms > 0
    assert "budget:ops.topping-up" in rule_names(decision)
    assert "downgrade:lease-short" not in rule_names(decision)


def test_nothing_fits_and_no_more_to_come_is_deny_naming_the_budget() -> None:
    h = Harness(OPS)
    h.book.requests(MONO, T0)
    h.grant(OPS, 200_000, reason="budget exhausted")  # less than asked
    decision = h.route()
    assert decision.action is Action.DENY
    assert "budget:ops.exhausted" in rule_names(decision)
    assert "ops" in decision.reason
    assert decision.reservation == () and h.reserved() == 0


def test_nothing_fits_while_a_top_up_may_come_is_throttle() -> None:
    h = Harness(OPS)
    h.grant(OPS, 200_000)
    decision = h.route()
    assert decision.action is Action.THROTTLE and decision.retry_after_ms > 0
    assert "budget:ops.topping-up" in rule_names(decision)
    assert h.reserved() == 0


def test_no_lease_yet_is_a_short_throttle_and_a_request() -> None:
    h = Harness(OPS)
    h.book.requests(MONO, T0)  # the eager request went out and is unanswered
    decision = h.route()
    assert (decision.action, decision.retry_after_ms) == (Action.THROTTLE, 50)
    assert "budget:ops.no-lease" in rule_names(decision)


def test_an_expired_lease_under_deny_policy_is_deny() -> None:
    h = Harness(OPS)
    h.grant(OPS, 50_000_000)
    decision = decide(
        h.snapshot, REQUEST, "d-x", now_ms=T0, mono_ms=MONO + 30_000, runtime=h.runtime
    )
    assert decision.action is Action.DENY
    assert "budget:ops.lease-expired" in rule_names(decision)


def test_a_dry_run_reserves_nothing() -> None:
    h = Harness(OPS)
    h.grant(OPS, 50_000_000)
    decision = h.route(dataclasses.replace(REQUEST, dry_run=True))
    assert decision.action is Action.ALLOW
    assert decision.reserved_cost_nanos == 0 and decision.reservation == ()
    assert h.reserved() == 0


def test_requests_outside_every_budget_scope_reserve_nothing() -> None:
    h = Harness(OPS)
    decision = h.route(dataclasses.replace(REQUEST, team="risk"))
    assert decision.action is Action.ALLOW and decision.reservation == ()
