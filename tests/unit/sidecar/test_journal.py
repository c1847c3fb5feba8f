"""The durable usage journal on real files: append, seal, ack, replay, torn tails, forfeits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from faregate.model import BudgetCharge
from sidecar.journal import JOURNAL_DIR, UsageJournal
from sidecar.lease_file import LeaseFile, forfeits
from sidecar.leases import LeaseClose, LeaseView
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
