"""The sidecar's approval book: requests waiting for an operator, and their verdicts.

When governance needs approval, the engine opens an entry here (keyed by approval
id, and by tenant, capability and idempotency key when the request has one) and the
book queues an `ApprovalRequest` for the control link to send on the Sync stream;
after a reconnect the link asks for every still-pending request again. Verdicts from
the control plane (`apply`) move an entry to approved (valid until `expires_at`, for
`max_uses` calls), denied (with the operator's reason) or expired. Verdicts reach
every sidecar, so the book also keeps verdicts for ids it never opened: a retry may
land on any sidecar of the service.

A request opened here expires `approval_ttl_ms` after it was opened (the governance
setting at the time); an approval without its own expiry or use limit gets the
governance defaults of the snapshot served when it is looked up. Uses are counted
here, by the sidecar that serves the retry. Time is always passed in; this module
reads no clock. Pure: must not import gRPC or the wire types (`faregate.v1`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from faregate.model import RiskLevel
from faregate.policy import Governance
from sidecar.decision import no_labels

DEFAULT_MAX_ENTRIES = 100_000


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    # Not sent by the control plane; what a lookup finds besides the states above.
    EXHAUSTED = "exhausted"  # approved, but every use has been spent
    MISMATCH = "mismatch"  # the id belongs to another tenant or capability


PENDING = ApprovalState.PENDING


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What the control plane is told about a request awaiting approval. Never prompt text."""

    approval_id: str
    capability: str
    tenant: str
    team: str
    model: str
    estimated_cost_nanos: int
    risk: RiskLevel
    labels: Mapping[str, str] = field(default_factory=no_labels)
    idempotency_key: str = ""
    decision_id: str = ""


@dataclass(frozen=True, slots=True)
class ApprovalVerdict:
    """An operator's decision as the control plane sends it; 0 means "the default"."""

    approval_id: str
    state: ApprovalState
    expires_at_unix_ms: int = 0
    max_uses: int = 0
    decided_by: str = ""
    reason: str = ""
    decided_at_unix_ms: int = 0


@dataclass(frozen=True, slots=True)
class ApprovalStatus:
    """What a lookup found, as of the `now_ms` it was asked at."""

    approval_id: str
    state: ApprovalState
    uses_left: int = 0
    max_uses: int = 0
    reason: str = ""
    decided_by: str = ""


@dataclass(slots=True)
class _Entry:
    request: ApprovalRequest | None  # None for a verdict on another sidecar's request
    opened_at_ms: int
    expires_at_ms: int = 0  # while pending; 0: opened elsewhere, use the governance TTL
    state: ApprovalState = ApprovalState.PENDING
    verdict: ApprovalVerdict | None = None
    verdict_at_ms: int = 0
    uses: int = 0


class ApprovalBook:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_key: dict[tuple[str, str, str], str] = {}
        self._outgoing: deque[str] = deque()
        self._max = max_entries
        self._listener: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def on_request(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a request is queued for the control plane."""
        self._listener = callback

    def open(self, request: ApprovalRequest, now_ms: int, ttl_ms: int) -> None:
        """Remember a new pending request and queue it for the control plane."""
        self._entries[request.approval_id] = _Entry(request, now_ms, now_ms + ttl_ms)
        if request.idempotency_key:
            key = (request.tenant, request.capability, request.idempotency_key)
            self._by_key[key] = request.approval_id
        self._queue(request.approval_id)
        self._bound()

    def find(
        self,
        approval_id: str,
        tenant: str,
        capability: str,
        idempotency_key: str,
        now_ms: int,
        governance: Governance,
    ) -> ApprovalStatus | None:
        """The approval a retry refers to, by id or else by idempotency key; None if unknown."""
        if not approval_id and idempotency_key:
            approval_id = self._by_key.get((tenant, capability, idempotency_key), "")
        entry = self._entries.get(approval_id) if approval_id else None
        if entry is None:
            return None
        request = entry.request
        if request is not None and (request.tenant, request.capability) != (tenant, capability):
            return ApprovalStatus(approval_id, ApprovalState.MISMATCH)
        state = entry.state
        verdict = entry.verdict
        if state is ApprovalState.PENDING:
            expires = entry.expires_at_ms or entry.opened_at_ms + governance.approval_ttl_ms
            if now_ms >= expires:
                return ApprovalStatus(approval_id, ApprovalState.EXPIRED)
            return ApprovalStatus(approval_id, state)
        if state is ApprovalState.APPROVED and verdict is not None:
            granted_at = verdict.decided_at_unix_ms or entry.verdict_at_ms
            expires = verdict.expires_at_unix_ms or granted_at + governance.default_grant_ms
            max_uses = verdict.max_uses or governance.default_max_uses
            if now_ms >= expires:
                state = ApprovalState.EXPIRED
            elif entry.uses >= max_uses:
                state = ApprovalState.EXHAUSTED
            return ApprovalStatus(
                approval_id, state, max(0, max_uses - entry.uses), max_uses, "", verdict.decided_by
            )
        reason = verdict.reason if verdict is not None else ""
        decided_by = verdict.decided_by if verdict is not None else ""
        return ApprovalStatus(approval_id, state, reason=reason, decided_by=decided_by)

    def use(self, approval_id: str) -> None:
        """Count one call made under an approval."""
        entry = self._entries.get(approval_id)
        if entry is not None:
            entry.uses += 1

    def apply(self, verdict: ApprovalVerdict, now_ms: int) -> None:
        """Record the control plane's verdict on an approval, ours or another sidecar's."""
        entry = self._entries.get(verdict.approval_id)
        if entry is None:
            entry = _Entry(None, now_ms)
            self._entries[verdict.approval_id] = entry
            self._bound()
        elif verdict.state is ApprovalState.PENDING:
            return  # an echo of the request; never undo a verdict already known
        entry.state = verdict.state
        entry.verdict = verdict
        entry.verdict_at_ms = now_ms

    def take_outgoing(self) -> list[ApprovalRequest]:
        """Requests queued since the last call, still pending, oldest first."""
        out = []
        while self._outgoing:
            entry = self._entries.get(self._outgoing.popleft())
            if entry is not None and entry.request is not None and entry.state is PENDING:
                out.append(entry.request)
        return out

    def resend_pending(self, now_ms: int) -> None:
        """Queue every request still waiting (after a reconnect: the last stream may have
        dropped them). The control plane treats a repeated approval id as the same request."""
        self._outgoing.clear()
        for approval_id, entry in self._entries.items():
            waiting = entry.request is not None and entry.state is PENDING
            if waiting and now_ms < entry.expires_at_ms:
                self._outgoing.append(approval_id)
        if self._outgoing and self._listener is not None:
            self._listener()

    def _queue(self, approval_id: str) -> None:
        self._outgoing.append(approval_id)
        if self._listener is not None:
            self._listener()

    def _bound(self) -> None:
        while len(self._entries) > self._max:
            approval_id, entry = self._entries.popitem(last=False)
            request = entry.request
            if request is not None and request.idempotency_key:
                key = (request.tenant, request.capability, request.idempotency_key)
                if self._by_key.get(key) == approval_id:
                    del self._by_key[key]
