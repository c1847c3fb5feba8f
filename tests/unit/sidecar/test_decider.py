"""The engine-facing layer: snapshot access, decision ids, idempotency keys."""

from __future__ import annotations

import itertools

import pytest

from faregate.model import Snapshot
from sidecar.decider import Decider, NoSnapshotError
from sidecar.engine import Decision, RequestError, RouteRequest
from tests.unit.sidecar.catalog import make_snapshot


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
