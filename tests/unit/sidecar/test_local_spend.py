"""Budget pressure from settled local spend: scopes, thresholds, periods, downgrades."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest

from faregate.model import Action, Budget, Capability, RoutingPolicy, Snapshot, UsageRecord
from faregate.periods import period_window
from sidecar.decision import RouteRequest
from sidecar.local_spend import LocalSpendPressure, threshold_nanos
from tests.unit.sidecar.catalog import T0, Engine, make_snapshot, record, rule_names

ORDERED = Capability(
    "chat", "", 500, ("big", "small", "tiny", "local", "tagged"), RoutingPolicy("ordered")
)
MONTHLY = Budget("chat-monthly", 1_000_000, "month", capability="chat", soft_thresholds=(0.9, 0.8))
REQUEST = RouteRequest("chat", tenant="acme", input_tokens=1_000)


class Source:
    def __init__(self, snapshot: Snapshot) -> None:
        self.current: Snapshot | None = snapshot


def setup(*budgets: Budget) -> tuple[Engine, LocalSpendPressure]:
    snapshot = make_snapshot(capabilities=(ORDERED,), budgets=budgets)
    spend = LocalSpendPressure(Source(snapshot))
    return Engine(snapshot, spend), spend


def spent(cost: int, at_ms: int = T0, **changes: object) -> UsageRecord:
    return dataclasses.replace(record(1), cost_nanos=cost, decided_at_unix_ms=at_ms, **changes)  # type: ignore[arg-type]


def ms(text: str, zone: str = "UTC") -> int:
    moment = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))
    return int(moment.timestamp() * 1000)


def test_below_the_soft_threshold_nothing_changes() -> None:
    engine, spend = setup(MONTHLY)
    spend.settled(spent(799_999))
    decision = engine.route(REQUEST)
    assert (decision.action, decision.model) == (Action.ALLOW, "big")


def test_past_the_lowest_soft_threshold_steps_one_model_down() -> None:
    engine, spend = setup(MONTHLY)
    spend.settled(spent(500_000))
    spend.settled(spent(300_000))
    decision = engine.route(REQUEST)
    # Chain by descending cost: big, tagged, local, small, tiny.
    assert (decision.action, decision.model) == (Action.DOWNGRADE, "tagged")
    assert rule_names(decision)[-1] == "downgrade:budget-soft"
    detail = dict(decision.rules)["downgrade:budget-soft"]
    assert "budget chat-monthly" in detail and "80% soft threshold" in detail
    assert "big -> tagged" in detail
    assert "chat-monthly" in decision.reason


def test_at_the_limit_it_is_still_only_a_downgrade_and_says_so() -> None:
    engine, spend = setup(MONTHLY)
    spend.settled(spent(1_000_000))
    decision = engine.route(REQUEST)
    assert decision.action is Action.DOWNGRADE
    assert "at or over its limit" in dict(decision.rules)["downgrade:budget-soft"]


def test_nothing_cheaper_keeps_the_route_and_says_why() -> None:
    snapshot = make_snapshot(budgets=(MONTHLY,))  # cheapest routing already picks tiny
    spend = LocalSpendPressure(Source(snapshot))
    spend.settled(spent(900_000))
    decision = Engine(snapshot, spend).route(REQUEST)
    assert (decision.action, decision.model) == (Action.ALLOW, "tiny")
    assert "nothing cheaper than tiny" in dict(decision.rules)["downgrade:budget-soft"]


@pytest.mark.parametrize(
    ("scope", "covered"),
    [
        ({}, True),
        ({"tenant": "acme"}, True),
        ({"tenant": "globex"}, False),
        ({"team": "legal"}, False),
        ({"capability": "essay"}, False),
        ({"model": "big"}, True),
        ({"model": "small"}, False),
        ({"tier": "large"}, True),
        ({"labels": MappingProxyType({"project": "x"})}, True),
        ({"labels": MappingProxyType({"project": "y"})}, False),
    ],
)
def test_budget_scope(scope: dict[str, object], covered: bool) -> None:
    budget = dataclasses.replace(Budget("b", 100), **scope)  # type: ignore[arg-type]
    engine, spend = setup(budget)
    # The record must be covered too: settle one on big, in the budget's scope.
    spend.settled(
        spent(
            100,
            model="big",
            team=str(scope.get("team", "")),
            capability=str(scope.get("capability", "chat")),
            labels=MappingProxyType({"project": "x"}),
        )
    )
    request = dataclasses.replace(REQUEST, labels=MappingProxyType({"project": "x"}))
    decision = engine.route(request)
    assert (decision.action is Action.DOWNGRADE) == covered


def test_day_rolls_over_at_local_midnight() -> None:
    budget = Budget("daily", 100, "day", soft_thresholds=(0.5,), time_zone="America/New_York")
    engine, spend = setup(budget)
    engine.now = ms("2027-03-01T23:00:00", "America/New_York")
    spend.settled(spent(60, engine.now))
    assert engine.route(REQUEST).action is Action.DOWNGRADE
    engine.now = ms("2027-03-01T23:59:59.999", "America/New_York")
    assert engine.route(REQUEST).action is Action.DOWNGRADE
    engine.now = ms("2027-03-02T00:00:00", "America/New_York")
    assert engine.route(REQUEST).action is Action.ALLOW  # a new day starts from zero
    spend.settled(spent(60, ms("2027-03-01T22:00:00", "America/New_York")))
    assert engine.route(REQUEST).action is Action.ALLOW  # late report of yesterday
    spend.settled(spent(50, engine.now))
    assert spend.spent(budget, engine.now) == 50
    assert engine.route(REQUEST).action is Action.DOWNGRADE


@pytest.mark.parametrize(
    ("period", "at", "start", "end"),
    [
        ("day", "2027-01-15T10:30:00", "2027-01-15T00:00:00", "2027-01-16T00:00:00"),
        ("week", "2027-01-15T10:30:00", "2027-01-11T00:00:00", "2027-01-18T00:00:00"),
        ("month", "2027-01-15T10:30:00", "2027-01-01T00:00:00", "2027-02-01T00:00:00"),
        ("month", "2027-12-31T23:59:00", "2027-12-01T00:00:00", "2028-01-01T00:00:00"),
        # Across the spring DST change the local day is 23 hours long.
        ("day", "2027-03-14T12:00:00", "2027-03-14T00:00:00", "2027-03-15T00:00:00"),
    ],
)
def test_periods_are_calendar_aligned_in_the_time_zone(
    period: str, at: str, start: str, end: str
) -> None:
    zone = "America/New_York"
    assert period_window(period, zone, ms(at, zone)) == (ms(start, zone), ms(end, zone))


def test_fixed_period_never_resets() -> None:
    budget = Budget("forever", 100, "fixed")
    engine, spend = setup(budget)
    spend.settled(spent(100, 0))
    engine.now = int(datetime(2040, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert engine.route(REQUEST).action is Action.DOWNGRADE


def test_threshold_is_exact_in_nanos() -> None:
    assert threshold_nanos(Budget("b", 1_000_000_001, soft_thresholds=(0.8,))) == 800_000_001
    assert threshold_nanos(Budget("b", 10)) == 10  # no soft threshold: the limit


def test_dry_runs_see_pressure_too() -> None:
    engine, spend = setup(MONTHLY)
    spend.settled(spent(900_000))
    assert engine.route(dataclasses.replace(REQUEST, dry_run=True)).model == "tagged"
