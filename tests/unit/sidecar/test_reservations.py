"""Report settles lease reservations; what is never reported is settled at its reservation."""

from __future__ import annotations

from faregate.model import Budget, LeaseClose, Outcome, UsageRecord
from faregate.periods import period_key
from sidecar.context import Runtime
from sidecar.decider import Decider
from sidecar.engine import RouteRequest
from sidecar.leases import Grant, LeaseBook
from sidecar.usage import LATE_REPORT, DecisionRegistry, UsageRecorder, UsageReport
from tests.unit.sidecar.catalog import FakeClock, make_snapshot

OPS = Budget("ops", 100_000_000, "day", team="ops")
SNAPSHOT = make_snapshot(budgets=(OPS,))
REQUEST = RouteRequest("chat", tenant="acme", team="ops", input_tokens=1_000)  # tiny: 300_000


class Source:
    current = SNAPSHOT


class Sink:
    def __init__(self) -> None:
        self.entries: list[UsageRecord | LeaseClose] = []

    def append(self, record: UsageRecord) -> None:
        self.entries.append(record)

    def append_close(self, close: LeaseClose) -> None:
        self.entries.append(close)


class Fixture:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.book = LeaseBook("inc-1")
        self.book.configure([OPS])
        key = period_key("day", "UTC", self.clock.now)
        grant = Grant("ops", "ls-ops", 10_000_000, 3_600_000, period_key=key)
        self.book.apply_grant(grant, self.clock.mono, self.clock.now)
        self.registry = DecisionRegistry(self.clock, report_deadline_ms=600_000)
        self.sink = Sink()
        runtime = Runtime.fresh(self.book, self.book)
        self.decider = Decider(Source(), self.registry, clock=self.clock, runtime=runtime)
        self.recorder = UsageRecorder(
            "svc", self.registry, self.sink, Source(), self.clock, leases=self.book
        )

    def held(self) -> tuple[int, int]:
        (view,) = self.book.leases(self.clock.mono)
        return view.spent_nanos, view.reserved_nanos


def test_report_settles_the_reservation_and_records_the_charge() -> None:
    f = Fixture()
    decision = f.decider.route(REQUEST)
    assert decision.reserved_cost_nanos == 300_000
    assert f.held() == (0, 300_000)
    (result,) = f.recorder.report([UsageReport(decision.decision_id, input_tokens=1_000)])
    assert result.cost_nanos == 100_000
    assert f.held() == (100_000, 0)
    (record,) = f.sink.entries
    assert isinstance(record, UsageRecord)
    assert record.budgets == ("ops",)
    (charge,) = record.charges
    assert (charge.budget, charge.lease_id, charge.reserved_nanos) == ("ops", "ls-ops", 300_000)


def test_a_call_never_reported_is_settled_at_its_reservation_after_the_deadline() -> None:
    f = Fixture()
    decision = f.decider.route(REQUEST)
    f.clock.advance(599_999)
    assert f.recorder.settle_overdue() == 0
    f.clock.advance(1)
    assert f.recorder.settle_overdue() == 1
    (record,) = f.sink.entries
    assert isinstance(record, UsageRecord)
    assert record.outcome is Outcome.UNREPORTED
    assert record.cost_nanos == 300_000 and record.charges[0].lease_id == "ls-ops"
    assert f.held() == (300_000, 0)
    assert f.recorder.settle_overdue() == 0  # once
    (late,) = f.recorder.report([UsageReport(decision.decision_id, input_tokens=1_000)])
    assert not late.accepted and late.error == LATE_REPORT
    assert len(f.sink.entries) == 1


def test_shutdown_settles_everything_held_then_the_lease_closes_after_it() -> None:
    f = Fixture()
    f.decider.route(REQUEST)
    f.decider.route(REQUEST)
    f.book.close_all("sidecar shutting down")
    assert f.book.take_closes() == []  # two calls in flight
    assert f.recorder.settle_all_unreported() == 2
    *records, close = f.sink.entries
    assert len(records) == 2 and isinstance(close, LeaseClose)
    assert (close.lease_id, close.spent_nanos, close.forfeit) == ("ls-ops", 600_000, False)
