"""The usage outbox: numbered batches that stay until ACKed."""

from __future__ import annotations

import dataclasses

import pytest

from sidecar.outbox import UsageOutbox
from tests.unit.sidecar.catalog import record


def fill(outbox: UsageOutbox, count: int) -> None:
    for n in range(count):
        outbox.append(record(n))


def test_nothing_queued_seals_nothing() -> None:
    outbox = UsageOutbox("inc-1")
    assert outbox.seal() is None
    assert outbox.is_empty


@pytest.mark.parametrize(
    ("records", "sizes"),
    [(1, [1]), (500, [500]), (501, [500, 1]), (1_200, [500, 500, 200])],
)
def test_batches_hold_at_most_500_records_numbered_from_1(records: int, sizes: list[int]) -> None:
    outbox = UsageOutbox("inc-1")
    fill(outbox, records)
    batches = outbox.seal_all()
    assert [len(b.records) for b in batches] == sizes
    assert [b.seq for b in batches] == list(range(1, len(sizes) + 1))
    assert {b.incarnation for b in batches} == {"inc-1"}
    # Records keep their order across batches.
    ids = [r.decision_id for b in batches for r in b.records]
    assert ids == [f"d-{n}" for n in range(records)]


def test_seq_keeps_counting_after_acks() -> None:
    outbox = UsageOutbox("inc-1")
    fill(outbox, 1)
    first = outbox.seal()
    assert first is not None
    assert outbox.ack("inc-1", first.seq) == first
    fill(outbox, 1)
    second = outbox.seal()
    assert second is not None and second.seq == 2


def test_unacked_batches_stay_pending_with_the_same_seq() -> None:
    outbox = UsageOutbox("inc-1", max_batch_records=2)
    fill(outbox, 5)
    sent = outbox.seal_all()
    assert [b.seq for b in sent] == [1, 2, 3]
    outbox.ack("inc-1", 2)
    # After a reconnect the link resends whatever is pending: the same batches, same seq.
    assert outbox.pending() == (sent[0], sent[2])
    assert outbox.pending_records == 3
    assert not outbox.is_empty
    outbox.ack("inc-1", 1)
    outbox.ack("inc-1", 3)
    assert outbox.pending() == ()
    assert outbox.is_empty


def test_repeated_or_unknown_ack_is_harmless() -> None:
    outbox = UsageOutbox("inc-1")
    fill(outbox, 1)
    batch = outbox.seal()
    assert batch is not None
    assert outbox.ack("inc-1", batch.seq) == batch
    assert outbox.ack("inc-1", batch.seq) is None
    assert outbox.ack("inc-1", 99) is None


def test_records_appended_later_go_into_a_new_batch() -> None:
    outbox = UsageOutbox("inc-1")
    fill(outbox, 2)
    first = outbox.seal()
    outbox.append(dataclasses.replace(record(7), decision_id="late"))
    second = outbox.seal()
    assert first is not None and second is not None
    assert [r.decision_id for r in second.records] == ["late"]
    assert outbox.queued_records == 0


def test_full_batch_wakes_the_shipper() -> None:
    calls: list[int] = []
    outbox = UsageOutbox("inc-1", max_batch_records=3)
    outbox.on_full(lambda: calls.append(outbox.queued_records))
    fill(outbox, 2)
    assert calls == []
    fill(outbox, 1)
    assert calls == [3]
