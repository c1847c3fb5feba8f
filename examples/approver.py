"""The demo's operator: every few seconds, decide the approvals the sidecars asked for.

Governance sends high-risk requests over the cost band to a human; in the demo this
stands in for one. It lists pending approvals through the Admin API, approves most
of them for a single use and denies every `DENY_EVERY`-th with a reason, the way
`faregate approvals approve|deny` would. Called from the demo's main loop (`tick`),
so it never blocks it for more than one round of Admin calls. Uses only the public
clients: must not import `controlplane` or `sidecar`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from clients import AdminClient, FaregateError

OPERATOR = "demo-operator"
PERIOD_S = 2.0
DENY_EVERY = 5  # about one request in five is turned down
GRANT_MS = 60_000
REASONS = (
    "forecast inputs are a week old; refresh them first",
    "use the quarterly model for this portfolio",
    "not for a credit decision without a second reviewer",
)


@dataclass
class Approver:
    admin: AdminClient
    period_s: float = PERIOD_S
    next_at: float = 0.0
    approved: int = 0
    denied: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def start(self, now: float) -> None:
        self.next_at = now + self.period_s

    def tick(self, now: float, *, force: bool = False) -> None:
        """Decide every pending approval, if a period has passed since the last round."""
        if now < self.next_at and not force:
            return
        self.next_at = now + self.period_s
        try:
            pending = self.admin.list_approvals()
        except FaregateError as error:
            self.errors[f"list: {error.code.name}"] += 1
            return
        for approval in sorted(pending, key=lambda a: a.requested_at_unix_ms):
            if approval.state != "pending":
                continue
            deny = (self.approved + self.denied + 1) % DENY_EVERY == 0
            try:
                if deny:
                    self.admin.decide_approval(
                        approval.approval_id,
                        approve=False,
                        decided_by=OPERATOR,
                        reason=REASONS[self.denied % len(REASONS)],
                    )
                else:
                    self.admin.decide_approval(
                        approval.approval_id,
                        approve=True,
                        decided_by=OPERATOR,
                        valid_for_ms=GRANT_MS,
                        max_uses=1,
                    )
            except FaregateError as error:  # decided or expired meanwhile
                self.errors[f"decide: {error.code.name}"] += 1
                continue
            if deny:
                self.denied += 1
            else:
                self.approved += 1
