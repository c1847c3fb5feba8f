"""The durable usage journal on real files: append, seal, ack, replay, torn tails, forfeits."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
from pathlib import Path

import pytest

from faregate.model import BudgetCharge, LeaseClose
from sidecar import journal as journal_module
from sidecar.convert import decode_usage_record
from sidecar.journal import JOURNAL_DIR, JournalUnavailable, UsageJournal
from sidecar.lease_file import LeaseFile, forfeits
from sidecar.leases import LeaseView
from tests.unit.sidecar.catalog import record


def charged(n: int, lease: str = "ls-1"):  # type: ignore[no-untyped-def]
    return dataclasses.replace(record(n), charges=(BudgetCharge("ops", lease, "2026-12", n),))


def segments(state: Path) -> list[Path]:
    return sorted((state / JOURNAL_DIR).glob("seg-*.log"))


def test_records_survive_a_restart_and_sealed_batches_keep_incarnation_and_seq(
    tmp_path: Path,
) -> None:
    journal = UsageJournal.open(tmp_path, "inc-1", max_batch_records=2)
    for n in range(1, 6):
        journal.append(charged(n))
    journal.append_close(LeaseClose("ls-1", "ops", 15))
    first, second = journal.seal(), journal.seal()
    assert first is not None and second is not None
    journal.append(charged(7))
    journal.ack("inc-1", first.seq)
    journal.sync()
    journal.close()

    replayed = UsageJournal.open(tmp_path, "inc-2", max_batch_records=2)
    (resent,) = replayed.pending()
    assert (resent.incarnation, resent.seq) == ("inc-1", 2)
    assert [r.decision_id for r in resent.records] == ["d-3", "d-4"]
    batches = replayed.seal_all()
    assert [(b.incarnation, b.seq) for b in batches] == [("inc-2", 1), ("inc-2", 2)]
    assert [r.decision_id for b in batches for r in b.records] == ["d-5", "d-7"]
    assert batches[0].lease_closes == (LeaseClose("ls-1", "ops", 15),)
    assert replayed.summary.open_closes == frozenset({"ls-1"})
    # ACKed spend (1 + 2) plus what is still journaled (3 + 4 + 5 + 7).
    assert replayed.summary.spent_by_lease == {"ls-1": 22}


def test_acked_batches_never_come_back_and_old_segments_go(tmp_path: Path) -> None:
    journal = UsageJournal.open(tmp_path, "inc-1")
    journal.append(charged(1))
    (batch,) = journal.seal_all()
    journal.sync()
    journal.close()
    again = UsageJournal.open(tmp_path, "inc-2")
    assert again.pending() == (batch,)
    assert again.ack("inc-1", 1) == batch
    assert again.ack("inc-1", 1) is None
    again.close()
    assert len(segments(tmp_path)) == 1  # only the segment being written
    third = UsageJournal.open(tmp_path, "inc-3")
    assert third.is_empty and third.pending() == ()


def test_a_torn_tail_is_dropped_and_everything_before_it_kept(tmp_path: Path) -> None:
    journal = UsageJournal.open(tmp_path, "inc-1")
    journal.append(charged(1))
    journal.append(charged(2))
    journal.sync()
    journal.close()
    (segment,) = [s for s in segments(tmp_path) if s.stat().st_size]
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # the crash hit mid-write of the second record
    replayed = UsageJournal.open(tmp_path, "inc-2")
    assert replayed.summary.torn_bytes > 0
    (batch,) = replayed.seal_all()
    assert [r.decision_id for r in batch.records] == ["d-1"]


def test_a_corrupt_record_is_caught_by_its_crc(tmp_path: Path) -> None:
    journal = UsageJournal.open(tmp_path, "inc-1")
    journal.append(charged(1))
    journal.sync()
    journal.close()
    (segment,) = [s for s in segments(tmp_path) if s.stat().st_size]
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert UsageJournal.open(tmp_path, "inc-2").is_empty


def test_nothing_is_durable_until_sync(tmp_path: Path) -> None:
    journal = UsageJournal.open(tmp_path, "inc-1")
    journal.append(charged(1))
    assert journal.needs_sync and journal.durable_through() == (1, 0)
    journal.sync()
    assert not journal.needs_sync
    # A process killed now (no close) has the record on disk.
    assert len(UsageJournal.open(tmp_path, "inc-2").seal_all()) == 1


def test_a_restart_forfeits_the_leases_the_previous_process_left_open(tmp_path: Path) -> None:
    leases = LeaseFile(tmp_path)
    views = [
        LeaseView("ops", "ls-1", "2026-12", 1_000, 10, 5, False),
        LeaseView("risk", "ls-2", "2026-12", 1_000, 0, 0, False),
    ]
    leases.write(views)
    assert json.loads((tmp_path / "leases.json").read_text())["leases"][0]["lease_id"] == "ls-1"
    journal = UsageJournal.open(tmp_path, "inc-1")
    journal.append(charged(10, "ls-1"))
    journal.append_close(LeaseClose("ls-2", "risk", 0))  # closed cleanly before the crash
    journal.sync()

    replayed = UsageJournal.open(tmp_path, "inc-2")
    summary = replayed.summary
    (close,) = forfeits(LeaseFile(tmp_path).read(), summary.open_closes, summary.spent_by_lease)
    assert (close.lease_id, close.budget, close.spent_nanos, close.forfeit) == (
        "ls-1",
        "ops",
        10,
        True,
    )


def replayed_ids(state: Path) -> list[str]:
    """Decision ids of the records on disk, in order (read only: no new segment, no seals)."""
    return [
        decode_usage_record(payload).decision_id
        for segment in segments(state)
        for _, kind, payload in journal_module._read_segment(segment).entries
        if kind == journal_module.RECORD
    ]


# -- batches (formerly the in-memory outbox's tests) ---------------------------------


def test_nothing_queued_seals_nothing(tmp_path: Path) -> None:
    journal = UsageJournal.open(tmp_path, "inc-1")
    assert journal.seal() is None
    assert journal.is_empty
    journal.close()


@pytest.mark.parametrize(
    ("records", "sizes"),
    [(1, [1]), (500, [500]), (501, [500, 1]), (1_200, [500, 500, 200])],
)
def test_batches_hold_at_most_500_records_numbered_from_1(
    tmp_path: Path, records: int, sizes: list[int]
) -> None:
    journal = UsageJournal.open(tmp_path, "inc-1")
    for n in range(records):
        journal.append(record(n))
    batches = journal.seal_all()
    assert [len(b.records) for b in batches] == sizes
    assert [b.seq for b in batches] == list(range(1, len(sizes) + 1))
    assert {b.incarnation for b in batches} == {"inc-1"}
    assert [r.decision_id for b in batches for r in b.records] == [f"d-{n}" for n in range(records)]
    journal.close()


def test_unacked_batches_stay_pending_and_acks_may_come_in_any_order(tmp_path: Path) -> None:
    journal = UsageJournal.open(tmp_path, "inc-1", max_batch_records=2)
    for n in range(5):
        journal.append(record(n))
    sent = journal.seal_all()
    assert [b.seq for b in sent] == [1, 2, 3]
    assert journal.ack("inc-1", 2) == sent[1]
    # After a reconnect the link resends whatever is pending: the same batches, same seq.
    assert journal.pending() == (sent[0], sent[2])
    assert journal.pending_records == 3 and not journal.is_empty
    assert journal.ack("inc-2", 1) is None  # no such batch: harmless
    journal.ack("inc-1", 1)
    journal.ack("inc-1", 3)
    assert journal.pending() == () and journal.is_empty
    journal.append(record(9))  # seq keeps counting after acks
    (later,) = journal.seal_all()
    assert later.seq == 4 and journal.queued_records == 0
    journal.close()


def test_a_batch_of_the_previous_incarnation_is_acked_under_its_own_name(tmp_path: Path) -> None:
    journal = UsageJournal.open(tmp_path, "inc-1")
    journal.append(record(1))
    (batch,) = journal.seal_all()
    journal.sync()
    journal.close()
    again = UsageJournal.open(tmp_path, "inc-2")
    assert again.ack("inc-2", batch.seq) is None  # same seq, other incarnation: not it
    assert again.ack("inc-1", batch.seq) == batch
    again.close()


def test_full_batch_wakes_the_shipper(tmp_path: Path) -> None:
    calls: list[int] = []
    journal = UsageJournal.open(tmp_path, "inc-1", max_batch_records=3)
    journal.on_full(lambda: calls.append(journal.queued_records))
    journal.append(record(1))
    journal.append(record(2))
    assert calls == []
    journal.append(record(3))
    assert calls == [3]
    journal.close()


# -- writes that fail ----------------------------------------------------------------


def test_short_writes_are_continued_until_everything_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write

    def short_write(fd: int, data: bytes) -> int:
        return real_write(fd, bytes(data[:7]))  # e.g. a signal or a nearly full disk

    journal = UsageJournal.open(tmp_path, "inc-1")
    journal.append(charged(1))
    journal.append(charged(2))
    monkeypatch.setattr(journal_module.os, "write", short_write)
    journal.sync()
    monkeypatch.undo()
    assert journal.durable_through() == (2, 2)
    assert replayed_ids(tmp_path) == ["d-1", "d-2"]


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_a_failed_write_keeps_the_entries_for_the_next_sync_and_cuts_the_segment_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    journal = UsageJournal.open(tmp_path, "inc-1")
    journal.append(charged(1))
    journal.sync()
    (segment,) = [s for s in segments(tmp_path) if s.stat().st_size]
    durable_size = segment.stat().st_size
    journal.append(charged(2))
    journal.append(charged(3))

    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        if len(data) > 10:
            return real_write(fd, bytes(data[:10]))  # part of it lands, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    def fsync_fails(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    if failing == "write":
        monkeypatch.setattr(journal_module.os, "write", disk_full)
    else:
        monkeypatch.setattr(journal_module.os, "fsync", fsync_fails)
    with pytest.raises(JournalUnavailable, match="2 entries are not durable"):
        journal.sync()
    # Not durable, nothing acknowledged, and no half-written entry left in the segment.
    assert journal.durable_through() == (3, 1) and journal.needs_sync
    assert segment.stat().st_size == durable_size
    assert replayed_ids(tmp_path) == ["d-1"]

    monkeypatch.undo()  # space again
    journal.sync()
    assert journal.durable_through() == (3, 3)
    assert replayed_ids(tmp_path) == ["d-1", "d-2", "d-3"]  # each exactly once
    journal.close()


def test_a_corrupt_entry_mid_segment_is_reported_and_the_entries_after_it_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = UsageJournal.open(tmp_path, "inc-1")
    journal.append(charged(1))
    journal.sync()
    (segment,) = [s for s in segments(tmp_path) if s.stat().st_size]
    second_at = segment.stat().st_size
    journal.append(charged(2))
    journal.append(charged(3))
    journal.sync()
    journal.close()
    data = bytearray(segment.read_bytes())
    data[second_at + 30] ^= 0xFF  # inside the second entry, already fsynced
    segment.write_bytes(bytes(data))

    with caplog.at_level(logging.ERROR, logger="sidecar.journal"):
        replayed = UsageJournal.open(tmp_path, "inc-2")
    assert [r.decision_id for b in replayed.seal_all() for r in b.records] == ["d-1", "d-3"]
    assert replayed.summary.corrupt_bytes > 0 and replayed.summary.torn_bytes == 0
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert str(segment) in message and f"offset {second_at}" in message
    assert "entries 2..2 lost" in message
    replayed.close()
