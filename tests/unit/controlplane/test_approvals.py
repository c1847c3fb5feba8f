"""Approval rules (decided once, expiry, replay) and the feed that announces decisions."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from controlplane.approval_feed import OVERLAP_MS, ApprovalWatcher
from controlplane.approvals import (
    MAX_GRANT_MS,
    RECENT_DENIAL_MS,
    Approval,
    ApprovalState,
    Verdict,
    closed_message,
    decide,
    lapse,
    verdict_problem,
    worth_replaying,
)
from controlplane.clock import FixedClock
from tests.unit.controlplane.memory_store import MemoryStore

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
    updated_at_ms=T0,
)
APPROVE = Verdict(approve=True, decided_by="ana", valid_for_ms=2 * HOUR, max_uses=3)
DENY = Verdict(approve=False, decided_by="bo", reason="use the summary model")


@pytest.mark.parametrize(
    ("valid_for_ms", "max_uses", "approve", "expected"),
    [
        (0, 0, True, None),
        (HOUR, 5, True, None),
        (0, 0, False, None),
        (-1, 0, True, "valid_for_ms: must not be negative"),
        (MAX_GRANT_MS + 1, 0, True, "valid_for_ms: must be at most 30 days"),
        (0, -2, True, "max_uses: must not be negative"),
        (0, 10**9, True, "max_uses: must be at most"),
        (HOUR, 0, False, "valid_for_ms: only an approval has a duration and uses"),
        (0, 3, False, "max_uses: only an approval"),
    ],
)
def test_verdict_problems_name_the_field(
    valid_for_ms: int, max_uses: int, approve: bool, expected: str | None
) -> None:
    problem = verdict_problem(valid_for_ms, max_uses, approve)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(expected)


def test_approving_grants_for_a_time_and_a_number_of_uses() -> None:
    approved, taken = decide(PENDING, APPROVE, T0 + 1_000)
    assert taken
    assert approved.state is ApprovalState.APPROVED
    assert approved.expires_at_ms == T0 + 1_000 + 2 * HOUR
    assert (approved.max_uses, approved.decided_by, approved.decided_at_ms) == (
        3,
        "ana",
        T0 + 1_000,
    )
    assert approved.updated_at_ms == T0 + 1_000


def test_denying_records_who_and_why() -> None:
    denied, taken = decide(PENDING, DENY, T0 + 5)
    assert taken
    assert (denied.state, denied.reason, denied.expires_at_ms) == (
        ApprovalState.DENIED,
        "use the summary model",
        0,
    )


def test_a_decision_is_taken_once() -> None:
    approved, _ = decide(PENDING, APPROVE, T0 + 1)
    again, taken = decide(approved, DENY, T0 + 2)
    assert not taken
    assert again == approved
    message = closed_message(again)
    assert message.startswith("approval ap-1 was already approved by ana at 2023-11-14")


def test_a_pending_request_expires_after_its_ttl() -> None:
    assert lapse(PENDING, T0 + HOUR - 1) is PENDING
    expired = lapse(PENDING, T0 + HOUR)
    assert (expired.state, expired.updated_at_ms) == (ApprovalState.EXPIRED, T0 + HOUR)
    decided, taken = decide(PENDING, APPROVE, T0 + HOUR + 5)
    assert not taken and decided.state is ApprovalState.EXPIRED
    assert "expired at" in closed_message(decided) and "ask again" in closed_message(decided)


def test_what_a_reconnecting_sidecar_hears_again() -> None:
    approved, _ = decide(PENDING, APPROVE, T0)
    denied, _ = decide(PENDING, DENY, T0)
    now = T0 + HOUR
    assert worth_replaying(approved, "sc-1", now)
    assert not worth_replaying(approved, "sc-2", now)  # someone else's
    assert not worth_replaying(approved, "sc-1", T0 + 2 * HOUR)  # the grant ran out
    assert worth_replaying(denied, "sc-1", now)
    assert not worth_replaying(denied, "sc-1", T0 + RECENT_DENIAL_MS + 1)
    assert not worth_replaying(PENDING, "sc-1", now)
    assert not worth_replaying(lapse(PENDING, now), "sc-1", now)


def test_the_feed_announces_each_closed_approval_once() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FixedClock(T0)
        watcher = ApprovalWatcher(store, clock)
        heard: list[tuple[str, ApprovalState]] = []
        watcher.subscribe(lambda a: heard.append((a.approval_id, a.state)))
        store.add_approval(PENDING)
        store.add_approval(dataclasses.replace(PENDING, approval_id="ap-2"))
        assert await watcher.refresh() == 0  # pending is nothing to announce
        clock.advance(1_000)
        store.decide_approval("ap-1", APPROVE, clock.now_ms())
        assert await watcher.refresh() == 1
        assert await watcher.refresh() == 0  # seen within the overlap: not again
        clock.advance(HOUR)  # ap-2's wait runs out; the feed writes the lapse
        assert await watcher.refresh() == 1
        assert heard == [("ap-1", ApprovalState.APPROVED), ("ap-2", ApprovalState.EXPIRED)]

    asyncio.run(scenario())


def test_the_feed_hears_a_replica_whose_clock_runs_behind() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FixedClock(T0)
        watcher = ApprovalWatcher(store, clock)
        heard: list[str] = []
        watcher.subscribe(lambda a: heard.append(a.approval_id))
        store.add_approval(dataclasses.replace(PENDING, expires_at_ms=T0 + 10 * HOUR))
        store.add_approval(
            dataclasses.replace(PENDING, approval_id="ap-2", expires_at_ms=T0 + 10 * HOUR)
        )
        clock.advance(5_000)
        store.decide_approval("ap-1", APPROVE, clock.now_ms())
        await watcher.refresh()
        # Another replica, its clock 3 s behind, decides ap-2 "before" ap-1.
        store.decide_approval("ap-2", DENY, clock.now_ms() - OVERLAP_MS // 3)
        await watcher.refresh()
        assert heard == ["ap-1", "ap-2"]

    asyncio.run(scenario())
