"""The engine-facing layer: one Route call from request to remembered decision.

Gives the pure engine what it must not fetch itself: the current snapshot and its
compiled policy, the time, a fresh decision id, and the `Runtime` (throttle
buckets, approval book, budget pressure) kept between requests. A retry carrying
the same idempotency key gets the decision it already got, unless that decision
was THROTTLE or APPROVAL_REQUIRED: those say "ask again", so the retry is decided
afresh (and finds its approval by key). Each new decision is left with the
`DecisionSink` so that Report can settle it. A dry run is decided in full but
leaves no trace: not answered from, nor written to, the idempotency memory, and
not remembered for Report. The idempotency memory is a small LRU owned by this
object, not global state. Must not import gRPC or the wire types.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from faregate.model import Action, Snapshot
from sidecar.clock import Clock, SystemClock
from sidecar.compiled import PolicyCache
from sidecar.context import Runtime
from sidecar.engine import Decision, RouteRequest, decide
from sidecar.snapshot_store import SnapshotSource

DEFAULT_IDEMPOTENCY_CAPACITY = 10_000
# Answers that invite a retry; replaying them would make the retry pointless.
_NOT_REPLAYED = (Action.THROTTLE, Action.APPROVAL_REQUIRED)


class NoSnapshotError(RuntimeError):
    """Nothing to decide from yet: no snapshot on disk and none pushed."""


class DecisionSink(Protocol):
    def remember(self, request: RouteRequest, decision: Decision, snapshot: Snapshot) -> None: ...


def new_decision_id() -> str:
    """128 random bits as hex, like `uuid4().hex` at a fifth of the cost."""
    return os.urandom(16).hex()


def new_approval_id() -> str:
    return "ap-" + os.urandom(12).hex()


class Decider:
    def __init__(
        self,
        snapshots: SnapshotSource,
        sink: DecisionSink,
        new_id: Callable[[], str] = new_decision_id,
        idempotency_capacity: int = DEFAULT_IDEMPOTENCY_CAPACITY,
        *,
        clock: Clock | None = None,
        runtime: Runtime | None = None,
        policies: PolicyCache | None = None,
    ) -> None:
        self._snapshots = snapshots
        self._sink = sink
        self._new_id = new_id
        self._capacity = idempotency_capacity
        self._clock = clock or SystemClock()
        self._runtime = runtime if runtime is not None else Runtime.fresh()
        self._policies = policies if policies is not None else PolicyCache()
        self._recent: OrderedDict[tuple[str, str, str], Decision] = OrderedDict()

    @property
    def runtime(self) -> Runtime:
        return self._runtime

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
        remembered = bool(request.idempotency_key) and not request.dry_run
        if remembered:
            earlier = self._recent.get(key)
            if earlier is not None:
                self._recent.move_to_end(key)
                return earlier
        decision = decide(
            snapshot,
            request,
            self._new_id(),
            now_ms=self._clock.now_ms(),
            mono_ms=self._clock.monotonic_ms(),
            runtime=self._runtime,
            policy=self._policies.get(snapshot),
        )
        if request.dry_run:
            return decision
        self._sink.remember(request, decision, snapshot)
        if remembered and decision.action not in _NOT_REPLAYED:
            self._recent[key] = decision
            if len(self._recent) > self._capacity:
                self._recent.popitem(last=False)
        return decision
