"""The engine-facing layer: snapshot access, decision ids, idempotency keys."""

from __future__ import annotations

import itertools

import pytest

from faregate.model import Action, Capability, RiskLevel, RoutingPolicy, Snapshot
from faregate.policy import Governance, Guardrails, Throttle
from sidecar.approvals import ApprovalState, ApprovalVerdict
from sidecar.decider import Decider, NoSnapshotError
from sidecar.engine import Decision, RequestError, RouteRequest
from tests.unit.sidecar.catalog import FakeClock, make_snapshot


class Source:
    def __init__(self, snapshot: Snapshot | None) -> None:
        self.current = snapshot


class Sink:
    def __init__(self) -> None:
        self.remembered: list[str] = []

    def remember(self, request: RouteRequest, decision: Decision, snapshot: Snapshot) -> None:
        self.remembered.append(decision.decision_id)


def make_decider(capacity: int = 100) -> tuple[Decider, Sink]:
    counter = itertools.count(1)
    sink = Sink()
    decider = Decider(
        Source(make_snapshot()),
        sink,
        new_id=lambda: f"d-{next(counter)}",
        idempotency_capacity=capacity,
    )
    return decider, sink


def test_each_request_gets_a_fresh_id_and_is_remembered() -> None:
    decider, sink = make_decider()
    first = decider.route(RouteRequest("chat"))
    second = decider.route(RouteRequest("chat"))
    assert (first.decision_id, second.decision_id) == ("d-1", "d-2")
    assert sink.remembered == ["d-1", "d-2"]


def test_same_idempotency_key_gets_the_same_decision() -> None:
    decider, sink = make_decider()
    first = decider.route(RouteRequest("chat", tenant="acme", idempotency_key="k"))
    retry = decider.route(RouteRequest("chat", tenant="acme", idempotency_key="k"))
    assert retry == first
    assert sink.remembered == ["d-1"]  # a replay is not a new decision


@pytest.mark.parametrize(
    "other",
    [
        RouteRequest("chat", tenant="globex", idempotency_key="k"),
        RouteRequest("essay", tenant="acme", idempotency_key="k"),
        RouteRequest("chat", tenant="acme", idempotency_key="k2"),
        RouteRequest("chat", tenant="acme"),
    ],
    ids=["other tenant", "other capability", "other key", "no key"],
)
def test_keys_are_scoped_by_tenant_and_capability(other: RouteRequest) -> None:
    decider, _ = make_decider()
    first = decider.route(RouteRequest("chat", tenant="acme", idempotency_key="k"))
    assert decider.route(other).decision_id != first.decision_id


def test_idempotency_memory_is_bounded_least_recently_used_first() -> None:
    decider, _ = make_decider(capacity=2)
    a = decider.route(RouteRequest("chat", idempotency_key="a"))
    decider.route(RouteRequest("chat", idempotency_key="b"))
    decider.route(RouteRequest("chat", idempotency_key="a"))  # touch a: b is now oldest
    decider.route(RouteRequest("chat", idempotency_key="c"))  # evicts b
    assert decider.route(RouteRequest("chat", idempotency_key="a")) == a
    assert decider.route(RouteRequest("chat", idempotency_key="b")).decision_id == "d-4"


def test_no_snapshot_yet_is_its_own_error() -> None:
    decider = Decider(Source(None), Sink())
    with pytest.raises(NoSnapshotError, match="no configuration yet"):
        decider.route(RouteRequest("chat"))


def test_invalid_request_is_not_remembered() -> None:
    decider, sink = make_decider()
    with pytest.raises(RequestError):
        decider.route(RouteRequest("chat", input_tokens=-1, idempotency_key="k"))
    assert sink.remembered == []


def test_default_ids_are_uuid_hex() -> None:
    decider = Decider(Source(make_snapshot()), Sink())
    decision_id = decider.route(RouteRequest("chat")).decision_id
    assert len(decision_id) == 32
    int(decision_id, 16)


def governed_decider() -> tuple[Decider, Sink, FakeClock]:
    """Chat routed `ordered` to big (10.5M nanos: the high band), on a fake clock."""
    capability = Capability("chat", "", 500, ("big", "small", "tiny"), RoutingPolicy("ordered"))
    snapshot = make_snapshot(
        capabilities=(capability,),
        guardrails=Guardrails(throttles=(Throttle("one", requests_per_second=1, burst=1),)),
    )
    counter = itertools.count(1)
    clock = FakeClock()
    sink = Sink()
    decider = Decider(Source(snapshot), sink, new_id=lambda: f"d-{next(counter)}", clock=clock)
    return decider, sink, clock


def test_dry_run_is_neither_remembered_nor_replayed() -> None:
    decider, sink, _ = governed_decider()
    dry = RouteRequest("chat", idempotency_key="k", dry_run=True)
    assert decider.route(dry).action is Action.ALLOW
    assert decider.route(dry).action is Action.ALLOW  # took no token
    assert sink.remembered == []
    real = decider.route(RouteRequest("chat", idempotency_key="k"))
    assert real.decision_id == "d-3"  # the dry runs left nothing to replay
    assert decider.route(RouteRequest("chat", idempotency_key="k", dry_run=True)).action is (
        Action.THROTTLE
    )


def test_throttle_is_not_replayed_to_a_retry() -> None:
    decider, _, clock = governed_decider()
    decider.route(RouteRequest("chat"))
    throttled = decider.route(RouteRequest("chat", idempotency_key="k"))
    assert throttled.action is Action.THROTTLE
    clock.now += throttled.retry_after_ms
    retry = decider.route(RouteRequest("chat", idempotency_key="k"))
    assert retry.action is Action.ALLOW
    assert decider.route(RouteRequest("chat", idempotency_key="k")) == retry


def test_approval_retry_by_key_is_decided_afresh_then_replayed() -> None:
    decider, sink, clock = governed_decider()
    request = RouteRequest(
        "chat", tenant="acme", risk=RiskLevel.HIGH, input_tokens=1_000, idempotency_key="k"
    )
    pending = decider.route(request)
    assert pending.action is Action.APPROVAL_REQUIRED
    assert decider.route(request).approval_id == pending.approval_id
    book = decider.runtime.approvals
    book.apply(
        ApprovalVerdict(pending.approval_id, ApprovalState.APPROVED, clock.now + 60_000, 1),
        clock.now,
    )
    granted = decider.route(request)
    assert granted.action is Action.ALLOW
    assert decider.route(request) == granted  # replayed: no second use counted
    status = book.find(pending.approval_id, "acme", "chat", "", clock.now, Governance())
    assert status is not None and status.state is ApprovalState.EXHAUSTED
    assert len(sink.remembered) == 3
