"""The store interface the services use, and the plain records it speaks.

The Sync and Admin services reach durable state only through `Store`, a
`typing.Protocol`, so they can be tested against an in-memory fake; `sql_store` is
the real implementation (SQLite or PostgreSQL). Every method is blocking: services
call them through `asyncio.to_thread`. Each method is one transaction, so a caller
never sees or leaves half an operation.

Must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from controlplane.approvals import Approval, Verdict
from controlplane.leases import BudgetTotals, Lease, LeaseAsk, LeaseGrant
from faregate.model import LeaseClose, Snapshot, UsageRecord


class SpendGroup(StrEnum):
    """What spend can be grouped by (`faregate spend --by`)."""

    CAPABILITY = "capability"
    MODEL = "model"
    TEAM = "team"  # keyed `tenant/team`: team names are only unique within a tenant
    TENANT = "tenant"
    SERVICE = "service"
    PROVIDER = "provider"


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    revision: int
    snapshot_version: str
    created_at_unix_ms: int
    author: str
    source_name: str
    models: int
    capabilities: int
    tenants: int


@dataclass(frozen=True, slots=True)
class AppendResult:
    """`created` is False when the content equals the latest revision's (nothing stored)."""

    revision: RevisionInfo
    created: bool


@dataclass(frozen=True, slots=True)
class SidecarHello:
    sidecar_id: str
    service: str
    incarnation: str
    snapshot_version: str
    hostname: str
    controlplane_id: str


@dataclass(frozen=True, slots=True)
class SidecarInfo:
    sidecar_id: str
    service: str
    connected: bool
    snapshot_version: str
    last_nack_version: str
    last_nack_reason: str
    last_seen_unix_ms: int
    incarnation: str
    hostname: str
    controlplane_id: str


@dataclass(frozen=True, slots=True)
class UsageBatch:
    """What a sidecar ships: applied at most once per (sidecar_id, incarnation, seq).

    Each record's charges are applied to its leases and budget periods; the lease
    closes after all the records. Charges must carry their period key (the Sync
    service fills missing ones from the snapshot; `controlplane.leases`)."""

    sidecar_id: str
    incarnation: str
    seq: int
    records: tuple[UsageRecord, ...]
    closes: tuple[LeaseClose, ...] = ()


@dataclass(frozen=True, slots=True)
class BatchResult:
    duplicate: bool
    applied: int  # ledger rows inserted; records already in the ledger are skipped
    late_records: int = 0  # charges through a lease that had already ended
    late_nanos: int = 0
    closed: int = 0  # leases closed or forfeited by this batch


@dataclass(frozen=True, slots=True)
class SpendRow:
    key: str
    cost_nanos: int
    requests: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    business_value_nanos: int


class Store(Protocol):
    """Durable state of the control plane, shared by every replica."""

    def latest_revision(self) -> RevisionInfo | None: ...

    def list_revisions(self, limit: int) -> Sequence[RevisionInfo]:
        """Newest first."""
        ...

    def get_snapshot(self, revision: int) -> Snapshot | None: ...

    def append_revision(
        self,
        snapshot: Snapshot,
        *,
        yaml_text: str,
        source_name: str,
        author: str,
        created_at_unix_ms: int,
    ) -> AppendResult:
        """Store `snapshot` as the next revision (its `revision` field is assigned here),
        unless its version equals the latest revision's."""
        ...

    def sidecar_connected(self, hello: SidecarHello, now_ms: int) -> None: ...

    def sidecar_seen(self, sidecar_id: str, snapshot_version: str, now_ms: int) -> None: ...

    def sidecar_acked(self, sidecar_id: str, version: str, now_ms: int) -> None: ...

    def sidecar_nacked(self, sidecar_id: str, version: str, reason: str, now_ms: int) -> None: ...

    def nacked_versions(self, sidecar_id: str) -> frozenset[str]: ...

    def sidecar_disconnected(self, sidecar_id: str, controlplane_id: str, now_ms: int) -> None:
        """Only if the sidecar is still recorded on this control plane (it may have
        reconnected to another replica meanwhile)."""
        ...

    def disconnect_all(self, controlplane_id: str, now_ms: int) -> int: ...

    def list_sidecars(self) -> Sequence[SidecarInfo]: ...

    def apply_usage_batch(self, batch: UsageBatch, now_ms: int) -> BatchResult:
        """Once per batch key, in one transaction: the ledger rows (once per decision),
        their charges to leases and budget periods, then the lease closes."""
        ...

    def grant_lease(self, ask: LeaseAsk) -> LeaseGrant:
        """Top up (or open) the asker's lease by what `controlplane.allocation` allows,
        under the budget period's row lock, and refresh its expiry; committed when this
        returns."""
        ...

    def list_leases(self, *, include_closed: bool) -> Sequence[Lease]:
        """Open leases (or all), by budget, period, sidecar."""
        ...

    def budget_totals(self, keys: Sequence[tuple[str, str]]) -> Sequence[BudgetTotals]:
        """Totals of each (budget, period key), in the order asked."""
        ...

    def budget_burn(self, budgets: Sequence[str], since_ms: int) -> dict[str, int]:
        """Ledger cost per budget of usage reported at or after `since_ms`."""
        ...

    def expire_leases(self, before_ms: int, now_ms: int) -> int:
        """Mark open leases whose expiry is before `before_ms` expired (their remainder
        returns to the budget); how many were."""
        ...

    def spend(self, group_by: SpendGroup, since_ms: int | None) -> Sequence[SpendRow]:
        """Totals per key over usage reported at or after `since_ms` (None: all time)."""
        ...

    def add_approval(self, approval: Approval) -> tuple[Approval, bool]:
        """Store a pending request once per `approval_id`: returns what is stored (the
        earlier record if the sidecar sent it before, decided or not) and whether it
        was stored just now."""
        ...

    def list_approvals(self, *, include_decided: bool, now_ms: int) -> Sequence[Approval]:
        """Pending approvals (or all of them), newest first; lapsed ones are first
        marked expired."""
        ...

    def decide_approval(
        self, approval_id: str, verdict: Verdict, now_ms: int
    ) -> tuple[Approval, bool] | None:
        """Apply `verdict` once (`controlplane.approvals.decide`), under a row lock;
        None if there is no such approval. A lapse found on the way is stored."""
        ...

    def expire_approvals(self, now_ms: int) -> int:
        """Mark pending approvals whose wait ran out as expired; how many were."""
        ...

    def approvals_changed_since(self, since_ms: int) -> Sequence[Approval]:
        """Approvals updated after `since_ms`, oldest change first (for replicas' polls)."""
        ...

    def approvals_to_replay(self, sidecar_id: str, now_ms: int) -> Sequence[Approval]:
        """A reconnecting sidecar's own decisions still worth sending it
        (`controlplane.approvals.worth_replaying`)."""
        ...

    def close(self) -> None: ...
