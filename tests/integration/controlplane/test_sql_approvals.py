"""Approvals in the SQL store, on real SQLite and PostgreSQL (`database_url` fixture)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from controlplane.approvals import Approval, ApprovalState, Verdict
from controlplane.migrate import upgrade
from controlplane.sql_store import SqlStore

T0 = 1_700_000_000_000
HOUR = 3_600_000

PENDING = Approval(
    approval_id="ap-1",
    sidecar_id="sc-1",
    service="risk-engine",
    capability="analysis",
    tenant="acme",
    team="risk",
    model="big",
    estimated_cost_nanos=165_000_000,
    risk="high",
    idempotency_key="report-42",
    decision_id="d-1",
    requested_at_ms=T0,
    expires_at_ms=T0 + HOUR,
    labels={"ticket": "T-1"},
    updated_at_ms=T0,
)
APPROVE = Verdict(approve=True, decided_by="ana", valid_for_ms=HOUR, max_uses=2)
DENY = Verdict(approve=False, decided_by="bo", reason="too dear")


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(database_url)
    upgrade(opened.engine)
    try:
        yield opened
    finally:
        opened.close()


def pending(approval_id: str, at: int = T0, **changes: object) -> Approval:
    return dataclasses.replace(
        PENDING,
        approval_id=approval_id,
        requested_at_ms=at,
        expires_at_ms=at + HOUR,
        updated_at_ms=at,
        **changes,  # type: ignore[arg-type]
    )


def test_a_request_is_stored_once_with_every_field(store: SqlStore) -> None:
    stored, created = store.add_approval(PENDING)
    assert created and stored == PENDING
    again, created = store.add_approval(dataclasses.replace(PENDING, model="other"))
    assert not created and again == PENDING
    assert store.list_approvals(include_decided=False, now_ms=T0) == [PENDING]


def test_a_decision_is_taken_once(store: SqlStore) -> None:
    store.add_approval(PENDING)
    assert store.decide_approval("nope", APPROVE, T0) is None
    outcome = store.decide_approval("ap-1", APPROVE, T0 + 1_000)
    assert outcome is not None
    approved, taken = outcome
    assert taken and approved.state is ApprovalState.APPROVED
    assert (approved.expires_at_ms, approved.max_uses) == (T0 + 1_000 + HOUR, 2)
    second = store.decide_approval("ap-1", DENY, T0 + 2_000)
    assert second == (approved, False)
    (listed,) = store.list_approvals(include_decided=True, now_ms=T0 + 3_000)
    assert listed == approved
    assert store.list_approvals(include_decided=False, now_ms=T0 + 3_000) == []


def test_concurrent_decisions_have_one_winner(store: SqlStore) -> None:
    store.add_approval(PENDING)
    verdicts = [APPROVE, DENY] * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda v: store.decide_approval("ap-1", v, T0 + 5), verdicts))
    assert sum(1 for o in outcomes if o is not None and o[1]) == 1


def test_pending_requests_expire_and_listing_is_newest_first(store: SqlStore) -> None:
    store.add_approval(pending("old", at=T0))
    store.add_approval(pending("new", at=T0 + 10 * 60_000))
    now = T0 + HOUR + 1
    assert [a.approval_id for a in store.list_approvals(include_decided=False, now_ms=now)] == [
        "new"
    ]
    every = store.list_approvals(include_decided=True, now_ms=now)
    assert [(a.approval_id, a.state) for a in every] == [
        ("new", ApprovalState.PENDING),
        ("old", ApprovalState.EXPIRED),
    ]
    outcome = store.decide_approval("old", APPROVE, now)
    assert outcome is not None and outcome[0].state is ApprovalState.EXPIRED and not outcome[1]
    # A lapse found while deciding is written too.
    store.add_approval(pending("late", at=T0))
    outcome = store.decide_approval("late", APPROVE, now)
    assert outcome is not None and not outcome[1]
    assert store.list_approvals(include_decided=True, now_ms=now)[-1].state is (
        ApprovalState.EXPIRED
    )


def test_changes_are_polled_and_decisions_replayed(store: SqlStore) -> None:
    store.add_approval(pending("a", at=T0))
    store.add_approval(pending("b", at=T0, sidecar_id="sc-2"))
    store.add_approval(pending("c", at=T0))
    store.decide_approval("a", APPROVE, T0 + 100)
    store.decide_approval("b", APPROVE, T0 + 200)
    store.decide_approval("c", DENY, T0 + 300)
    assert [a.approval_id for a in store.approvals_changed_since(T0 + 150)] == ["b", "c"]
    assert store.expire_approvals(T0 + 10) == 0
    replay = store.approvals_to_replay("sc-1", T0 + 1_000)
    assert sorted(a.approval_id for a in replay) == ["a", "c"]
    # Once the grant has run out, only the (recent) denial is replayed.
    assert [a.approval_id for a in store.approvals_to_replay("sc-1", T0 + 2 * HOUR)] == ["c"]
