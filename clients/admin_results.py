"""What the Admin API answers, as typed values the CLI and scripts consume.

Frozen dataclasses only. Pure: must not import gRPC or the wire types (`faregate.v1`);
`clients.convert` builds these from protobuf. Snapshots use `faregate.model.Snapshot`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class ConfigChange:
    kind: str  # model | capability | tenant | budget | guardrails | governance
    name: str
    op: str  # add | change | remove
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    revision: int  # 0 on a dry run or when nothing changed
    snapshot_version: str
    changes: tuple[ConfigChange, ...] = ()
    unchanged: bool = False
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    revision: int
    snapshot_version: str
    created_at_unix_ms: int
    author: str = ""
    source_name: str = ""
    models: int = 0
    capabilities: int = 0
    tenants: int = 0


@dataclass(frozen=True, slots=True)
class SidecarInfo:
    sidecar_id: str
    service: str
    connected: bool
    snapshot_version: str  # the last version this sidecar ACKed
    last_nack_version: str = ""
    last_nack_reason: str = ""
    last_seen_unix_ms: int = 0
    incarnation: str = ""
    hostname: str = ""
    controlplane_id: str = ""


@dataclass(frozen=True, slots=True)
class SidecarList:
    sidecars: tuple[SidecarInfo, ...]
    current_version: str  # the version every sidecar should be running


@dataclass(frozen=True, slots=True)
class SpendRow:
    key: str
    cost_nanos: int
    requests: int
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    business_value_nanos: int = 0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens (the cached part is already inside the prompt)."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class SpendReport:
    rows: tuple[SpendRow, ...]
    total_cost_nanos: int
    total_requests: int
    window_ms: int  # 0: all time
    group_by: str


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """Where an approval stands: `pending`, `approved`, `denied` or `expired`.

    `expires_at_unix_ms` is when a pending request lapses, or when an approval stops
    being valid (0 for a denial)."""

    approval_id: str
    state: str
    expires_at_unix_ms: int = 0
    max_uses: int = 0
    decided_by: str = ""
    reason: str = ""
    decided_at_unix_ms: int = 0


@dataclass(frozen=True, slots=True)
class Approval:
    """A request a sidecar held for an operator's approval, and its decision."""

    approval_id: str
    decision: ApprovalDecision
    capability: str
    tenant: str = ""
    team: str = ""
    model: str = ""
    estimated_cost_nanos: int = 0
    risk: str = ""
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    idempotency_key: str = ""
    decision_id: str = ""
    sidecar_id: str = ""
    requested_at_unix_ms: int = 0
    service: str = ""

    @property
    def state(self) -> str:
        return self.decision.state


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget in its current period. `remaining` is what no lease holds
    (limit - committed - outstanding); a projected exhaustion of 0 means not within
    the period at the current burn rate; a period end of 0, never (`fixed`)."""

    name: str
    period_key: str
    limit_nanos: int
    committed_nanos: int
    outstanding_nanos: int
    remaining_nanos: int
    forfeited_nanos: int = 0
    late_nanos: int = 0
    burn_rate_nanos_per_hour: int = 0
    projected_exhaustion_unix_ms: int = 0
    mode: str = ""
    offline_policy: str = ""
    soft_threshold_crossed: bool = False
    scope: str = ""
    open_leases: int = 0
    period_end_unix_ms: int = 0


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A sidecar's authority to spend a slice of a budget; `state` is `open`,
    `closed`, `forfeited` or `expired`, `held` what it still adds to outstanding."""

    lease_id: str
    budget: str
    period_key: str
    sidecar_id: str
    state: str
    granted_nanos: int
    applied_nanos: int
    held_nanos: int = 0
    expires_at_unix_ms: int = 0
    service: str = ""
    incarnation: str = ""
    created_at_unix_ms: int = 0
    updated_at_unix_ms: int = 0
