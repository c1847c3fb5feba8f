"""The usage journal: settled usage and lease closes, durable before anyone is told.

Everything the control plane must eventually apply goes through here, in order:
usage records (`append`), lease closes (`append_close`, after every record of
their lease) and batch seals. Each entry is appended to a segment file in
`STATE_DIR/journal/` as

    u32 payload length | u32 CRC32 of the rest | u8 kind | u64 entry number | payload

Records and closes are the wire messages (`sidecar.convert`), seals a small JSON.
Appends are buffered; `sync` writes the buffer and fsyncs it, and callers await
it before acknowledging a Report or sending a batch (one fsync covers every
entry appended before it: group commit). A buffer leaves memory only once all
of it is written and fsynced; if a write or the fsync fails (a full disk), the
segment is cut back to its last durable length, the entries stay buffered for
the next `sync`, and `sync` raises `JournalUnavailable`, so nobody is told
those entries are durable.

Batches (`seal`) take the oldest unsealed entries, with this incarnation and the
next seq, and the seal entry is journaled before the batch is sent. An ACK drops
the batch; the lowest entry still needed (oldest unacked batch, else oldest
unsealed entry) goes to `checkpoint.json` and segments wholly below it are
deleted. The checkpoint is replaced without fsync: if a crash loses it, batches
are resent and the control plane ACKs them as duplicates.

On start (`UsageJournal.open`) the segments are replayed: entries below the
checkpoint are done; sealed batches not yet ACKed are resent with their
original incarnation and seq; unsealed entries go into new batches of the new
incarnation. Entries are only ever appended, so a record failing the length or
CRC check is expected only as a torn tail (a crash mid-write, never fsynced
nor acknowledged): it is dropped with a warning, and each process appends to a
new segment. A bad record followed by valid ones is corruption: it is logged as
an error naming the file, the offset and the entry numbers lost, skipped, and
every valid entry after it is still read.
Also kept: per lease, the spend the control plane has ACKed, so a restarted
sidecar can state what its previous incarnation spent through each lease.

Blocking file I/O: `sync` is meant to run on a worker thread (it takes a lock),
everything else on the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faregate.model import LeaseClose, UsageRecord
from sidecar.convert import (
    decode_lease_close,
    decode_usage_record,
    encode_lease_close,
    encode_usage_record,
)
from sidecar.usage import MAX_BATCH_RECORDS, UsageBatch

log = logging.getLogger(__name__)

JOURNAL_DIR = "journal"
CHECKPOINT_FILE = "checkpoint.json"
SEGMENT_BYTES = 8 * 1024 * 1024
RECORD, CLOSE, SEAL = 1, 2, 3
_HEADER = struct.Struct("<IIBQ")  # length, crc, kind, entry number
_CRC_OFFSET = 8  # the CRC covers kind, entry number and payload


@dataclass(slots=True)
class _Entry:
    number: int
    kind: int
    record: UsageRecord | None = None
    close: LeaseClose | None = None


@dataclass(slots=True)
class _Pending:
    batch: UsageBatch
    first: int  # lowest entry number in the batch


@dataclass(slots=True)
class _Segment:
    path: Path
    last: int  # highest entry number written to it


class JournalUnavailable(Exception):
    """Entries could not be made durable; they stay buffered for the next `sync`."""


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    resent_batches: int
    unsealed_entries: int
    torn_bytes: int
    open_closes: frozenset[str] = frozenset()  # lease ids with a close still journaled
    spent_by_lease: Mapping[str, int] = field(default_factory=dict)
    corrupt_bytes: int = 0  # skipped inside segments, valid entries after them kept


def _encode(number: int, kind: int, payload: bytes) -> bytes:
    body = struct.pack("<BQ", kind, number) + payload
    return struct.pack("<II", len(payload), zlib.crc32(body)) + body


def _entry_at(data: bytes, offset: int, after: int) -> tuple[int, int, bytes, int] | None:
    """(number, kind, payload, end) of a valid entry numbered above `after`, else None."""
    length, crc, kind, number = _HEADER.unpack_from(data, offset)
    end = offset + _HEADER.size + length
    if end > len(data) or number <= after or kind not in (RECORD, CLOSE, SEAL):
        return None
    if zlib.crc32(data[offset + _CRC_OFFSET : end]) != crc:
        return None
    return number, kind, data[offset + _HEADER.size : end], end


def _next_entry(data: bytes, start: int, after: int) -> int | None:
    """Offset of the next valid entry at or after `start` (a scan, for corruption only)."""
    for offset in range(start, len(data) - _HEADER.size + 1):
        if _entry_at(data, offset, after) is not None:
            return offset
    return None


@dataclass(slots=True)
class _SegmentRead:
    entries: list[tuple[int, int, bytes]]  # (number, kind, payload)
    torn: int  # bytes of an invalid tail
    corrupt: int  # bytes skipped before valid entries


def _read_segment(path: Path) -> _SegmentRead:
    data = path.read_bytes()
    read = _SegmentRead([], 0, 0)
    offset = last = 0
    while offset + _HEADER.size <= len(data):
        found = _entry_at(data, offset, last)
        if found is None:
            resume = _next_entry(data, offset + 1, last)
            if resume is None:
                break  # nothing valid after it: a torn tail
            number = _HEADER.unpack_from(data, resume)[3]
            log.error(
                "journal %s: corrupt entry at offset %d; skipped %d bytes to the valid entry "
                "at offset %d (entries %d..%d lost)",
                path,
                offset,
                resume - offset,
                resume,
                last + 1,
                number - 1,
            )
            read.corrupt += resume - offset
            offset = resume
            continue
        number, kind, payload, offset = found
        read.entries.append((number, kind, payload))
        last = number
    read.torn = len(data) - offset
    return read


def _add_spend(spent: dict[str, int], records: Iterable[UsageRecord]) -> None:
    """Add each record's cost to every lease it was charged through."""
    for record in records:
        for charge in record.charges:
            spent[charge.lease_id] = spent.get(charge.lease_id, 0) + record.cost_nanos


class UsageJournal:
    def __init__(
        self,
        directory: Path,
        incarnation: str,
        max_batch_records: int = MAX_BATCH_RECORDS,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        if max_batch_records <= 0:
            raise ValueError("max_batch_records must be > 0")
        self.incarnation = incarnation
        self._dir = directory
        self._max = max_batch_records
        self._segment_bytes = segment_bytes
        self._queued: deque[_Entry] = deque()
        self._pending: OrderedDict[tuple[str, int], _Pending] = OrderedDict()
        self._segments: list[_Segment] = []
        self._next = 1
        self._last_seq = 0
        self._low_water = 0
        self._acked_spend: dict[str, int] = {}
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._fd = -1
        self._written = 0  # durable bytes in the current segment
        self._cut_pending = False  # a failed write left bytes past `_written`
        self._appended = 0  # entries appended, ever (for group commit)
        self._buffered_last = 0  # number of the last entry in the buffer
        self._durable = 0  # entries known to be on disk
        self._on_full: Callable[[], None] | None = None
        self.summary = ReplaySummary(0, 0, 0)

    # -- start ---------------------------------------------------------------------

    @classmethod
    def open(
        cls, directory: Path, incarnation: str, max_batch_records: int = MAX_BATCH_RECORDS
    ) -> UsageJournal:
        """Replay what an earlier process left in `directory`, then accept appends."""
        journal = cls(directory / JOURNAL_DIR, incarnation, max_batch_records)
        journal._replay()
        return journal

    def _replay(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        checkpoint = self._read_checkpoint()
        self._low_water = int(checkpoint.get("low_water", 0))
        self._acked_spend = {str(k): int(v) for k, v in checkpoint.get("acked_spend", {}).items()}
        entries: OrderedDict[int, _Entry] = OrderedDict()
        seals: list[dict[str, object]] = []
        torn = corrupt = 0
        highest = 0
        for path in sorted(self._dir.glob("seg-*.log")):
            read = _read_segment(path)
            if read.torn:
                log.warning("journal %s: dropped %d bytes of a torn tail", path, read.torn)
                torn += read.torn
            corrupt += read.corrupt
            last = max((n for n, _, _ in read.entries), default=0)
            highest = max(highest, last)
            self._segments.append(_Segment(path, last))
            for number, kind, payload in read.entries:
                if number < self._low_water:
                    continue
                if kind == RECORD:
                    entries[number] = _Entry(number, kind, record=decode_usage_record(payload))
                elif kind == CLOSE:
                    entries[number] = _Entry(number, kind, close=decode_lease_close(payload))
                elif kind == SEAL:
                    seals.append(json.loads(payload))
        for seal in seals:
            first, last = int(str(seal["first"])), int(str(seal["last"]))
            covered = [entries.pop(n) for n in range(first, last + 1) if n in entries]
            if covered:
                batch = self._batch(str(seal["incarnation"]), int(str(seal["seq"])), covered)
                self._pending[(batch.incarnation, batch.seq)] = _Pending(batch, first)
        self._queued.extend(entries.values())
        self._next = max(highest + 1, self._low_water, 1)
        spent: dict[str, int] = dict(self._acked_spend)
        batches = [p.batch for p in self._pending.values()]
        _add_spend(spent, [r for b in batches for r in b.records])
        _add_spend(spent, [e.record for e in self._queued if e.record is not None])
        closes = {c.lease_id for b in batches for c in b.lease_closes}
        closes |= {e.close.lease_id for e in self._queued if e.close is not None}
        self.summary = ReplaySummary(
            len(self._pending), len(self._queued), torn, frozenset(closes), spent, corrupt
        )
        self._start_segment()

    def _read_checkpoint(self) -> dict[str, Any]:
        try:
            value = json.loads((self._dir / CHECKPOINT_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def _start_segment(self) -> None:
        path = self._dir / f"seg-{self._next:020d}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._segments.append(_Segment(path, self._next - 1))
        self._written = 0

    # -- appending -----------------------------------------------------------------

    def on_full(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a full batch's worth of entries is queued."""
        self._on_full = callback

    def append(self, record: UsageRecord) -> None:
        entry = self._write(RECORD, encode_usage_record(record))
        entry.record = record
        self._queue(entry)

    def append_close(self, close: LeaseClose) -> None:
        entry = self._write(CLOSE, encode_lease_close(close))
        entry.close = close
        self._queue(entry)

    def _queue(self, entry: _Entry) -> None:
        self._queued.append(entry)
        if len(self._queued) >= self._max and self._on_full is not None:
            self._on_full()

    def _write(self, kind: int, payload: bytes) -> _Entry:
        number = self._next
        self._next += 1
        with self._lock:
            self._buffer += _encode(number, kind, payload)
            self._appended += 1
            self._buffered_last = number
        return _Entry(number, kind)

    @property
    def needs_sync(self) -> bool:
        return self._durable < self._appended

    def sync(self) -> None:
        """Write and fsync everything appended so far. Thread-safe; blocking.

        Raises `JournalUnavailable` if that fails: nothing appended since the last
        successful sync is durable, and it all stays buffered for the next one."""
        with self._lock:  # appends wait, so the buffer is exactly what gets written
            target = self._appended
            if self._buffer:
                try:
                    self._write_out(self._buffer)
                except OSError as exc:
                    raise JournalUnavailable(
                        f"usage journal {self._segments[-1].path} could not be written "
                        f"({exc}); {target - self._durable} entries are not durable yet "
                        "and will be retried"
                    ) from exc
                self._buffer.clear()
                self._segments[-1].last = self._buffered_last
            self._durable = max(self._durable, target)
            if self._written >= self._segment_bytes:
                try:
                    self._start_segment()
                except OSError as exc:  # keep appending to the current one; try again later
                    log.error("usage journal: cannot start a new segment: %s", exc)

    def _write_out(self, data: bytearray) -> None:
        """Write all of `data` and fsync it, or leave the segment at its durable length."""
        if self._cut_pending:
            self._cut_back()
        view = memoryview(data)
        done = 0
        try:
            while done < len(view):
                written = os.write(self._fd, view[done:])
                if written <= 0:
                    raise OSError(f"write returned {written} with {len(view) - done} bytes left")
                done += written
            os.fsync(self._fd)
        except OSError:
            self._cut_pending = True
            try:
                self._cut_back()
            except OSError as cut:
                log.error("usage journal: cannot cut back a failed write: %s", cut)
            raise
        finally:
            view.release()
        self._written += len(data)

    def _cut_back(self) -> None:
        """Drop bytes of a failed write, so the next write follows the last durable entry."""
        os.ftruncate(self._fd, self._written)
        self._cut_pending = False

    def durable_through(self) -> tuple[int, int]:
        """(entries appended, entries on disk): group commit waits for the first to be reached."""
        return self._appended, self._durable

    # -- batches -------------------------------------------------------------------

    def _batch(self, incarnation: str, seq: int, entries: list[_Entry]) -> UsageBatch:
        return UsageBatch(
            incarnation,
            seq,
            tuple(e.record for e in entries if e.record is not None),
            tuple(e.close for e in entries if e.close is not None),
        )

    def seal(self) -> UsageBatch | None:
        """Cut the next batch from the oldest unsealed entries and journal the seal.
        Call `sync` before sending it."""
        if not self._queued:
            return None
        entries = [self._queued.popleft() for _ in range(min(self._max, len(self._queued)))]
        self._last_seq += 1
        batch = self._batch(self.incarnation, self._last_seq, entries)
        first, last = entries[0].number, entries[-1].number
        seal = {"incarnation": batch.incarnation, "seq": batch.seq, "first": first, "last": last}
        self._write(SEAL, json.dumps(seal).encode())
        self._pending[(batch.incarnation, batch.seq)] = _Pending(batch, first)
        return batch

    def seal_all(self) -> list[UsageBatch]:
        batches: list[UsageBatch] = []
        while (batch := self.seal()) is not None:
            batches.append(batch)
        return batches

    def pending(self) -> tuple[UsageBatch, ...]:
        """Sealed batches not yet ACKed, oldest first (replayed ones before new ones)."""
        return tuple(p.batch for p in self._pending.values())

    def ack(self, incarnation: str, seq: int) -> UsageBatch | None:
        """Drop an ACKed batch; None if it was not pending (e.g. a repeated ACK)."""
        done = self._pending.pop((incarnation, seq), None)
        if done is None:
            return None
        batch = done.batch
        _add_spend(self._acked_spend, batch.records)
        for close in batch.lease_closes:
            self._acked_spend.pop(close.lease_id, None)
        self._advance()
        return batch

    def _advance(self) -> None:
        candidates = [p.first for p in self._pending.values()]
        if self._queued:
            candidates.append(self._queued[0].number)
        low = min(candidates, default=self._next)
        if low <= self._low_water:
            self._write_checkpoint()
            return
        self._low_water = low
        self._write_checkpoint()
        with self._lock:  # `sync` may be starting a segment on its thread
            current = self._segments[-1]
            for segment in self._segments[:-1]:
                if segment.last < low:
                    segment.path.unlink(missing_ok=True)
            self._segments = [s for s in self._segments[:-1] if s.last >= low] + [current]

    def _write_checkpoint(self) -> None:
        # No fsync: a lost checkpoint only means duplicates the control plane ignores.
        path = self._dir / CHECKPOINT_FILE
        tmp = path.with_name(path.name + ".tmp")
        state = {"low_water": self._low_water, "acked_spend": self._acked_spend}
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)

    # -- state ---------------------------------------------------------------------

    @property
    def queued_records(self) -> int:
        return len(self._queued)

    @property
    def pending_records(self) -> int:
        return sum(len(p.batch.records) + len(p.batch.lease_closes) for p in self._pending.values())

    @property
    def is_empty(self) -> bool:
        return not self._queued and not self._pending

    def close(self) -> None:
        try:
            self.sync()
        finally:
            with self._lock:
                if self._fd >= 0:
                    os.close(self._fd)
                    self._fd = -1
