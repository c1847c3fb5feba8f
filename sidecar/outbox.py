"""Settled usage waiting to reach the control plane, cut into numbered batches.

Records queue up until a batch is sealed; a sealed batch carries this process's
incarnation and the next sequence number (1, 2, 3, ...) and stays pending until
the control plane ACKs that seq. After a reconnect every pending batch is sent
again with the same seq, and the control plane applies each (incarnation, seq)
once, so a record is neither lost to a dropped stream nor counted twice.

This outbox lives in memory (for tests and tools); the sidecar runs the durable
`journal.UsageJournal` behind the same small interface (`UsageLog`). Lease closes
queue with the records, so a close ships after every record of its lease.
Must not import gRPC or the wire types.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from faregate.model import UsageRecord
from sidecar.leases import LeaseClose

MAX_BATCH_RECORDS = 500


@dataclass(frozen=True, slots=True)
class UsageBatch:
    incarnation: str
    seq: int
    records: tuple[UsageRecord, ...]
    lease_closes: tuple[LeaseClose, ...] = ()


class UsageLog(Protocol):
    """What the usage path and the control link need of the outbox or the journal."""

    incarnation: str

    def on_full(self, callback: Callable[[], None]) -> None: ...
    def append(self, record: UsageRecord) -> None: ...
    def append_close(self, close: LeaseClose) -> None: ...
    def seal_all(self) -> list[UsageBatch]: ...
    def pending(self) -> tuple[UsageBatch, ...]: ...
    def ack(self, incarnation: str, seq: int) -> UsageBatch | None: ...
    def sync(self) -> None: ...

    @property
    def needs_sync(self) -> bool: ...
    @property
    def queued_records(self) -> int: ...
    @property
    def pending_records(self) -> int: ...
    @property
    def is_empty(self) -> bool: ...


class UsageOutbox:
    def __init__(self, incarnation: str, max_batch_records: int = MAX_BATCH_RECORDS) -> None:
        if max_batch_records <= 0:
            raise ValueError("max_batch_records must be > 0")
        self.incarnation = incarnation
        self._max = max_batch_records
        self._queued: deque[UsageRecord | LeaseClose] = deque()
        self._pending: OrderedDict[int, UsageBatch] = OrderedDict()
        self._last_seq = 0
        self._on_full: Callable[[], None] | None = None

    def on_full(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a full batch's worth of records is queued."""
        self._on_full = callback

    def append(self, record: UsageRecord | LeaseClose) -> None:
        self._queued.append(record)
        if len(self._queued) >= self._max and self._on_full is not None:
            self._on_full()

    def append_close(self, close: LeaseClose) -> None:
        self.append(close)

    def sync(self) -> None:
        """Nothing to make durable: this outbox lives in memory."""

    @property
    def needs_sync(self) -> bool:
        return False

    def seal(self) -> UsageBatch | None:
        """Cut the next batch from the queued records; None when nothing is queued."""
        if not self._queued:
            return None
        count = min(self._max, len(self._queued))
        entries = [self._queued.popleft() for _ in range(count)]
        self._last_seq += 1
        batch = UsageBatch(
            self.incarnation,
            self._last_seq,
            tuple(e for e in entries if isinstance(e, UsageRecord)),
            tuple(e for e in entries if isinstance(e, LeaseClose)),
        )
        self._pending[batch.seq] = batch
        return batch

    def seal_all(self) -> list[UsageBatch]:
        batches: list[UsageBatch] = []
        while (batch := self.seal()) is not None:
            batches.append(batch)
        return batches

    def pending(self) -> tuple[UsageBatch, ...]:
        """Sealed batches not yet ACKed, oldest first."""
        return tuple(self._pending.values())

    def ack(self, incarnation: str, seq: int) -> UsageBatch | None:
        """Drop an ACKed batch; None if it was not pending (e.g. a repeated ACK)."""
        if incarnation != self.incarnation:
            return None
        return self._pending.pop(seq, None)

    @property
    def queued_records(self) -> int:
        return len(self._queued)

    @property
    def pending_records(self) -> int:
        return sum(len(b.records) + len(b.lease_closes) for b in self._pending.values())

    @property
    def is_empty(self) -> bool:
        return not self._queued and not self._pending
