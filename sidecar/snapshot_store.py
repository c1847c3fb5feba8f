"""The snapshot the sidecar decides from, and its last good copy on disk.

Everything that reads configuration goes through `SnapshotSource.current`; a new
snapshot replaces the old one in a single assignment, so a request sees either the
old or the new snapshot, never a mix. A snapshot is checked in full before it is
applied (all or nothing) and then written to `STATE_DIR/snapshot.pb`, which is
loaded at start so that Route keeps serving while the control plane is away
(fail-static). How a snapshot becomes bytes is the injected `SnapshotCodec`.
Checking includes compiling the snapshot's policy (`compiled.PolicyCache`), so a
guardrails or governance section that does not decode is rejected, and the
decider sharing the cache finds it compiled.
Must not import gRPC or the wire types.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from faregate.model import Snapshot
from faregate.policy import PolicyDecodeError
from sidecar.compiled import PolicyCache
from sidecar.snapshot_check import check_snapshot
from sidecar.state_dir import write_atomic

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.pb"


class SnapshotSource(Protocol):
    """The one way decision code reaches configuration."""

    @property
    def current(self) -> Snapshot | None: ...


class SnapshotCodec(Protocol):
    def encode(self, snapshot: Snapshot) -> bytes: ...

    def decode(self, data: bytes) -> Snapshot:
        """Raises ValueError when `data` is not a snapshot."""
        ...


class SnapshotRejected(ValueError):
    """A snapshot that failed its checks; the message lists every problem."""


class SnapshotStore:
    def __init__(
        self, state_dir: Path, codec: SnapshotCodec, policies: PolicyCache | None = None
    ) -> None:
        self._path = state_dir / SNAPSHOT_FILE
        self._codec = codec
        self._policies = policies if policies is not None else PolicyCache()
        self._current: Snapshot | None = None
        self._listeners: list[Callable[[Snapshot], None]] = []

    @property
    def current(self) -> Snapshot | None:
        return self._current

    @property
    def version(self) -> str:
        return self._current.version if self._current is not None else ""

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None:
        """Call `listener` with every snapshot applied from now on."""
        self._listeners.append(listener)

    def load(self) -> Snapshot | None:
        """Serve the last good snapshot from disk, if there is a usable one."""
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read %s: %s; starting without a snapshot", self._path, exc)
            return None
        try:
            snapshot = self._codec.decode(data)
            self._check(snapshot)
        except ValueError as exc:
            # A bad file must not keep the sidecar down: the control plane will push anew.
            log.warning("ignoring %s: %s", self._path, exc)
            return None
        self._swap(snapshot)
        return snapshot

    def apply(self, snapshot: Snapshot) -> None:
        """Check, persist and swap in `snapshot`; raises SnapshotRejected and keeps the old."""
        self._check(snapshot)
        if self._current is not None and self._current.version == snapshot.version:
            return
        try:
            write_atomic(self._path, self._codec.encode(snapshot))
        except OSError as exc:
            # Serving the new configuration matters more than the fail-static copy;
            # a restart before the next successful write falls back to the older file.
            log.error("cannot persist snapshot %s to %s: %s", snapshot.version, self._path, exc)
        self._swap(snapshot)

    def _check(self, snapshot: Snapshot) -> None:
        problems = list(check_snapshot(snapshot))
        if not problems:
            try:
                self._policies.get(snapshot)
            except PolicyDecodeError as exc:
                problems.append(str(exc))
        if problems:
            raise SnapshotRejected("; ".join(problems))

    def _swap(self, snapshot: Snapshot) -> None:
        self._current = snapshot
        for listener in self._listeners:
            listener(snapshot)
