"""The engine-facing layer: one Route call from request to remembered decision.

Gives the pure engine what it must not fetch itself (the current snapshot and a
fresh decision id), answers a retry carrying the same idempotency key with the
decision it already got, and leaves each new decision with the `DecisionSink` so
that Report can settle it later. The idempotency memory is a small LRU owned by
this object, not global state. Must not import gRPC or the wire types.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from faregate.model import Snapshot
from sidecar.engine import Decision, RouteRequest, decide
from sidecar.snapshot_store import SnapshotSource

DEFAULT_IDEMPOTENCY_CAPACITY = 10_000


class NoSnapshotError(RuntimeError):
    """Nothing to decide from yet: no snapshot on disk and none pushed."""


class DecisionSink(Protocol):
    def remember(self, request: RouteRequest, decision: Decision, snapshot: Snapshot) -> None: ...


def new_decision_id() -> str:
    return uuid.uuid4().hex


class Decider:
    def __init__(
        self,
        snapshots: SnapshotSource,
        sink: DecisionSink,
        new_id: Callable[[], str] = new_decision_id,
        idempotency_capacity: int = DEFAULT_IDEMPOTENCY_CAPACITY,
    ) -> None:
        self._snapshots = snapshots
        self._sink = sink
        self._new_id = new_id
        self._capacity = idempotency_capacity
        self._recent: OrderedDict[tuple[str, str, str], Decision] = OrderedDict()

    def route(self, request: RouteRequest) -> Decision:
        """Raises NoSnapshotError, or engine.RequestError for invalid requests."""
        snapshot = self._snapshots.current
        if snapshot is None:
            raise NoSnapshotError(
                "no configuration yet: the control plane has not sent a snapshot "
                "and there is none on disk"
            )
        # Scoped by tenant and capability so one caller's key never returns another's decision.
        key = (request.tenant, request.capability, request.idempotency_key)
        if request.idempotency_key:
            earlier = self._recent.get(key)
            if earlier is not None:
                self._recent.move_to_end(key)
                return earlier
        decision = decide(snapshot, request, self._new_id())
        self._sink.remember(request, decision, snapshot)
        if request.idempotency_key:
            self._recent[key] = decision
            if len(self._recent) > self._capacity:
                self._recent.popitem(last=False)
        return decision
