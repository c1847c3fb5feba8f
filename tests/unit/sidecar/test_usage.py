"""Report: pricing actual usage against remembered decisions, once per decision."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import NoReturn

import grpc
import pytest
from prometheus_client import CollectorRegistry

from faregate.model import Action, Budget, LeaseClose, Outcome, UsageRecord
from faregate.periods import period_key
from faregate.v1 import router_pb2
from sidecar.context import Runtime
from sidecar.decider import Decider
from sidecar.engine import Decision, RequestError, RouteRequest, decide
from sidecar.group_commit import GroupCommit
from sidecar.journal import UsageJournal
from sidecar.leases import Grant, LeaseBook
from sidecar.metrics import SidecarMetrics
from sidecar.router_service import RouterService
from sidecar.usage import MAX_TOKENS, DecisionRegistry, UsageRecorder, UsageReport, UsageSink
from tests.unit.sidecar.catalog import FakeClock, make_snapshot, model

SNAPSHOT = make_snapshot()


class Source:
    current = SNAPSHOT


class Sink:
    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def append(self, record: UsageRecord) -> None:
        self.records.append(record)

    def append_close(self, close: object) -> None:
        raise AssertionError("no leases here")


class Fixture:
    def __init__(self, capacity: int = 1_000, ttl_ms: int = 60_000) -> None:
        self.clock = FakeClock()
        self.registry = DecisionRegistry(self.clock, capacity=capacity, ttl_ms=ttl_ms)
        self.sink = Sink()
        self.recorder = UsageRecorder("svc", self.registry, self.sink, Source(), self.clock)

    def route(self, request: RouteRequest, decision_id: str = "d-1") -> Decision:
        decision = decide(SNAPSHOT, request, decision_id)
        self.registry.remember(request, decision, SNAPSHOT)
        return decision


@pytest.fixture
def f() -> Fixture:
    return Fixture()


@pytest.mark.parametrize(
    ("request_", "report", "cost"),
    [
        # tiny: $0.10 in, $0.40 out per Mtok.
        (RouteRequest("chat"), UsageReport("d-1", input_tokens=1_000_000), 100_000_000),
        # small (soc2): cached input at half price; input counts the whole prompt.
        (
            RouteRequest("chat", required_compliance_tags=("soc2",)),
            UsageReport(
                "d-1", input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=1_000
            ),
            90_000_000 + 30_000_000 + 600_000,
        ),
        # long, below its 200k tier: $1.25 in, $10 out.
        (
            RouteRequest("essay", input_tokens=100_000),
            UsageReport("d-1", model="long", input_tokens=100_000, output_tokens=1_000),
            125_000_000 + 10_000_000,
        ),
        # long, above its tier: every token at $2.50 in, $15 out.
        (
            RouteRequest("essay"),
            UsageReport("d-1", model="long", input_tokens=250_000, output_tokens=1_000),
            625_000_000 + 15_000_000,
        ),
        # Output tokens at the output rate: 1 in + 1 out on tiny.
        (RouteRequest("chat"), UsageReport("d-1", input_tokens=1, output_tokens=1), 500),
    ],
    ids=["plain", "cached input", "below tier", "above tier", "single tokens"],
)
def test_reports_are_priced_with_cost_nanos(
    f: Fixture, request_: RouteRequest, report: UsageReport, cost: int
) -> None:
    f.route(request_)
    (result,) = f.recorder.report([report])
    assert result.accepted and not result.duplicate
    assert result.cost_nanos == cost
    (record,) = f.sink.records
    assert record.cost_nanos == cost


def test_usage_record_carries_the_decision_and_the_report(f: Fixture) -> None:
    decision = f.route(
        RouteRequest("chat", tenant="acme", team="risk", labels={"a": "1"}, trace_id="t-9")
    )
    f.clock.now += 1_500
    f.recorder.report(
        [
            UsageReport(
                "d-1",
                input_tokens=10,
                output_tokens=20,
                latency_ms=900,
                outcome=Outcome.SUCCESS,
                business_value_nanos=5,
                outcome_label="resolved",
                labels={"b": "2"},
            )
        ]
    )
    (record,) = f.sink.records
    assert record.decision_id == "d-1"
    assert (record.service, record.capability, record.tenant, record.team) == (
        "svc",
        "chat",
        "acme",
        "risk",
    )
    assert (record.model, record.provider) == ("tiny", "tiny-inc")
    assert record.action is Action.ALLOW
    assert record.estimated_cost_nanos == decision.estimated_cost_nanos
    assert record.config_version == SNAPSHOT.version
    assert record.price_version == "tiny@1"
    assert record.reported_at_unix_ms - record.decided_at_unix_ms == 1_500
    assert dict(record.labels) == {"a": "1", "b": "2"}
    assert record.trace_id == "t-9"
    assert (record.outcome, record.latency_ms, record.outcome_label) == (
        Outcome.SUCCESS,
        900,
        "resolved",
    )


def test_second_report_is_a_duplicate_and_not_counted(f: Fixture) -> None:
    f.route(RouteRequest("chat"))
    (first,) = f.recorder.report([UsageReport("d-1", input_tokens=1_000_000)])
    second, third = f.recorder.report(
        [UsageReport("d-1", input_tokens=5), UsageReport("d-1", input_tokens=7)]
    )
    assert first.accepted and not first.duplicate
    for again in (second, third):
        assert again.accepted and again.duplicate
        assert again.cost_nanos == first.cost_nanos
    assert len(f.sink.records) == 1


def test_replayed_decision_stays_reported(f: Fixture) -> None:
    request = RouteRequest("chat")
    decision = f.route(request)
    f.recorder.report([UsageReport("d-1")])
    f.registry.remember(request, decision, SNAPSHOT)  # e.g. an idempotent retry
    (again,) = f.recorder.report([UsageReport("d-1")])
    assert again.duplicate


def test_unknown_ids_are_rejected_one_by_one(f: Fixture) -> None:
    f.route(RouteRequest("chat"))
    unknown, known = f.recorder.report(
        [UsageReport("nope", input_tokens=1), UsageReport("d-1", input_tokens=1)]
    )
    assert not unknown.accepted
    assert unknown.error == "unknown or expired decision id"
    assert known.accepted
    assert [r.decision_id for r in f.sink.records] == ["d-1"]


def test_report_naming_a_known_model_is_priced_with_it(f: Fixture) -> None:
    f.route(RouteRequest("chat"))
    (result,) = f.recorder.report([UsageReport("d-1", model="big", input_tokens=1_000_000)])
    assert result.cost_nanos == 3_000_000_000
    (record,) = f.sink.records
    assert (record.model, record.provider, record.price_version) == ("big", "big-inc", "big@1")


def test_report_naming_an_unknown_model_keeps_the_routed_price(f: Fixture) -> None:
    f.route(RouteRequest("chat"))
    (result,) = f.recorder.report([UsageReport("d-1", model="mystery", input_tokens=1_000_000)])
    assert result.accepted
    assert result.cost_nanos == 100_000_000  # tiny's price
    assert f.sink.records[0].model == "mystery"


def test_denied_decision_has_nothing_to_report(f: Fixture) -> None:
    decision = f.route(RouteRequest("chat", input_tokens=10_000_000))
    assert decision.action is Action.DENY
    (result,) = f.recorder.report([UsageReport("d-1", input_tokens=1)])
    assert not result.accepted
    assert "deny" in result.error
    assert f.sink.records == []


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (UsageReport(""), "reports[1].decision_id"),
        (UsageReport("d-1", input_tokens=-1), "reports[1].input_tokens"),
        (UsageReport("d-1", output_tokens=-1), "reports[1].output_tokens"),
        (UsageReport("d-1", latency_ms=-1), "reports[1].latency_ms"),
        (
            UsageReport("d-1", input_tokens=5, cached_input_tokens=6),
            "reports[1].cached_input_tokens",
        ),
        (UsageReport("d-1", output_tokens=2**62), "reports[1].output_tokens"),
        (UsageReport("d-1", input_tokens=MAX_TOKENS + 1), "reports[1].input_tokens"),
        (
            UsageReport("d-1", input_tokens=2**64, cached_input_tokens=MAX_TOKENS + 1),
            "reports[1].input_tokens",
        ),
        (UsageReport("d-1", latency_ms=2**63), "reports[1].latency_ms"),
        (UsageReport("d-1", business_value_nanos=-1), "reports[1].business_value_nanos"),
        (UsageReport("d-1", business_value_nanos=2**63), "reports[1].business_value_nanos"),
    ],
)
def test_malformed_batch_is_rejected_whole_naming_the_field(
    f: Fixture, bad: UsageReport, field: str
) -> None:
    f.route(RouteRequest("chat"))
    with pytest.raises(RequestError) as caught:
        f.recorder.report([UsageReport("d-1", input_tokens=1), bad])
    assert caught.value.field == field
    assert f.sink.records == []
    # Nothing was counted, so the good report still goes through afterwards.
    (result,) = f.recorder.report([UsageReport("d-1", input_tokens=1)])
    assert result.accepted and not result.duplicate


def test_decisions_expire(f: Fixture) -> None:
    f.route(RouteRequest("chat"))
    f.clock.now += 60_001
    (result,) = f.recorder.report([UsageReport("d-1")])
    assert not result.accepted
    assert len(f.registry) == 0


def test_registry_is_bounded_oldest_first() -> None:
    f = Fixture(capacity=2)
    for n in range(3):
        f.route(RouteRequest("chat"), decision_id=f"d-{n}")
    assert f.registry.lookup("d-0") is None
    assert f.registry.lookup("d-1") is not None
    assert f.registry.lookup("d-2") is not None


def test_token_counts_up_to_the_cap_are_accepted(f: Fixture) -> None:
    f.route(RouteRequest("chat"))
    (result,) = f.recorder.report(
        [UsageReport("d-1", input_tokens=MAX_TOKENS, output_tokens=MAX_TOKENS)]
    )
    assert result.accepted and result.cost_nanos == f.sink.records[0].cost_nanos > 0


def test_a_cost_beyond_int64_refuses_the_whole_batch_before_anything_is_counted() -> None:
    gold = model("gold", price=(1, 1, 10**15))  # $1M per Mtok out: 10**10 tokens overflow
    snapshot = make_snapshot(models=(*make_snapshot().models, gold))

    class GoldSource:
        current = snapshot

    f = Fixture()
    f.recorder = UsageRecorder("svc", f.registry, f.sink, GoldSource(), f.clock)
    f.route(RouteRequest("chat"), "d-1")
    f.route(RouteRequest("chat"), "d-2")
    with pytest.raises(RequestError) as caught:
        f.recorder.report(
            [
                UsageReport("d-1", input_tokens=1),
                UsageReport("d-2", model="gold", output_tokens=MAX_TOKENS),
            ]
        )
    assert caught.value.field == "reports[1]" and "gold" in caught.value.message
    assert f.sink.records == [] and f.registry.reported_cost("d-1") is None


def test_the_same_decision_twice_in_one_batch_counts_once(f: Fixture) -> None:
    f.route(RouteRequest("chat"))
    first, second = f.recorder.report([UsageReport("d-1", input_tokens=10)] * 2)
    assert first.accepted and not first.duplicate
    assert second.duplicate and second.cost_nanos == first.cost_nanos
    assert len(f.sink.records) == 1


# -- with leases: nothing half applied -------------------------------------------------

OPS = Budget("ops", 100_000_000, "day", team="ops")
LEASED = make_snapshot(budgets=(OPS,))
OPS_REQUEST = RouteRequest("chat", tenant="acme", team="ops", input_tokens=1_000)  # 300_000


class LeasedSource:
    current = LEASED


class Leased:
    """A decider and a recorder sharing one lease book (10_000_000 granted on `ops`)."""

    def __init__(self, sink: UsageSink) -> None:
        self.clock = FakeClock()
        self.book = LeaseBook("inc-1")
        self.book.configure([OPS])
        key = period_key("day", "UTC", self.clock.now)
        grant = Grant("ops", "ls-ops", 10_000_000, 3_600_000, period_key=key)
        self.book.apply_grant(grant, self.clock.mono, self.clock.now)
        self.registry = DecisionRegistry(self.clock)
        runtime = Runtime.fresh(self.book, self.book)
        self.decider = Decider(LeasedSource(), self.registry, clock=self.clock, runtime=runtime)
        self.recorder = UsageRecorder(
            "svc", self.registry, sink, LeasedSource(), self.clock, leases=self.book
        )

    def held(self) -> tuple[int, int]:
        (view,) = self.book.leases(self.clock.mono)
        return view.spent_nanos, view.reserved_nanos


class FlakySink:
    """Refuses its first record, as a journal does one it cannot encode."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self.refuse = True

    def append(self, record: UsageRecord) -> None:
        if self.refuse:
            self.refuse = False
            raise ValueError("Value out of range")
        self.records.append(record)

    def append_close(self, close: LeaseClose) -> None:
        raise AssertionError("no close expected")


def test_a_record_the_journal_refuses_leaves_the_lease_untouched() -> None:
    sink = FlakySink()
    f = Leased(sink)
    decision = f.decider.route(OPS_REQUEST)
    assert f.held() == (0, 300_000)
    with pytest.raises(ValueError, match="out of range"):
        f.recorder.report([UsageReport(decision.decision_id, input_tokens=1_000)])
    assert f.held() == (0, 300_000)  # not settled...
    assert f.registry.reported_cost(decision.decision_id) is None  # ...nor marked reported
    (result,) = f.recorder.report([UsageReport(decision.decision_id, input_tokens=1_000)])
    assert result.accepted and not result.duplicate
    assert f.held() == (100_000, 0)  # settled exactly once
    (record,) = sink.records
    (charge,) = record.charges
    assert (charge.lease_id, charge.reserved_nanos) == ("ls-ops", 300_000)


# -- through the Router service ----------------------------------------------------------


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code, self.details = code, details


class AbortingContext:
    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


class Served:
    def __init__(self, state: Path) -> None:
        self.journal = UsageJournal.open(state, "inc-1")
        self.leased = Leased(self.journal)
        self.service = RouterService(
            self.leased.decider,
            self.leased.recorder,
            SidecarMetrics(CollectorRegistry()),
            durable=GroupCommit(self.journal).commit,
        )

    def report(self, **fields: object) -> router_pb2.ReportResponse | Aborted:
        request = router_pb2.ReportRequest(reports=[router_pb2.UsageReport(**fields)])  # type: ignore[arg-type]
        try:
            return asyncio.run(self.service.Report(request, AbortingContext()))  # type: ignore[arg-type]
        except Aborted as exc:
            return exc


def test_an_oversized_report_is_invalid_argument_and_settles_nothing(tmp_path: Path) -> None:
    s = Served(tmp_path)
    decision = s.leased.decider.route(OPS_REQUEST)
    answer = s.report(decision_id=decision.decision_id, output_tokens=2**62)
    assert isinstance(answer, Aborted)
    assert answer.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "reports[0].output_tokens" in answer.details
    assert s.leased.held() == (0, 300_000)
    answer = s.report(decision_id=decision.decision_id, input_tokens=1_000)
    assert isinstance(answer, router_pb2.ReportResponse)
    (result,) = answer.results
    assert result.accepted and not result.duplicate and result.cost_nanos == 100_000
    assert s.leased.held() == (100_000, 0)
    s.journal.close()


def test_a_journal_that_cannot_be_written_makes_report_unavailable_and_a_retry_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Served(tmp_path)
    decision = s.leased.decider.route(OPS_REQUEST)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sidecar.journal.os.fsync", disk_full)
    answer = s.report(decision_id=decision.decision_id, input_tokens=1_000)
    assert isinstance(answer, Aborted)
    assert answer.code is grpc.StatusCode.UNAVAILABLE
    assert "No space left on device" in answer.details
    assert s.journal.needs_sync

    monkeypatch.undo()
    answer = s.report(decision_id=decision.decision_id, input_tokens=1_000)
    assert isinstance(answer, router_pb2.ReportResponse)
    (result,) = answer.results
    # The first attempt settled it; the retry is answered only now that it is durable.
    assert result.accepted and result.duplicate and result.cost_nanos == 100_000
    assert not s.journal.needs_sync
    assert s.leased.held() == (100_000, 0)
    s.journal.close()
    replayed = UsageJournal.open(tmp_path, "inc-2")
    (batch,) = replayed.seal_all()
    assert [r.decision_id for r in batch.records] == [decision.decision_id]
    replayed.close()
