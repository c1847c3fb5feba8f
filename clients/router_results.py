"""What the Router API answers, as typed values: `RouteResult` and `ReportResult`.

Frozen dataclasses plus the human explanation of a decision. Pure: must not import
gRPC or the wire types (`faregate.v1`); `clients.convert` builds these from protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass

from faregate.model import Action
from faregate.pricing import format_usd

_ALLOWED = frozenset({Action.ALLOW, Action.DOWNGRADE})


@dataclass(frozen=True, slots=True)
class RuleFired:
    """One configured rule that shaped a decision, e.g. `sensitivity:confidential->local-only`."""

    rule: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RouteResult:
    """The sidecar's decision for one request: which model, whether it may run, and why."""

    decision_id: str
    action: Action
    model: str = ""
    provider: str = ""
    tier: str = ""
    estimated_cost_nanos: int = 0
    reserved_cost_nanos: int = 0
    max_output_tokens: int = 0
    rules: tuple[RuleFired, ...] = ()
    config_version: str = ""
    approval_id: str = ""
    retry_after_ms: int = 0
    reason: str = ""

    @property
    def allowed(self) -> bool:
        """True when the service may call `model` now (ALLOW, or DOWNGRADE to a cheaper one)."""
        return self.action in _ALLOWED

    def explain(self) -> str:
        """A few lines for a human: the verdict, the money, the rules that fired."""
        verdict = self.action.value.replace("_", " ").upper()
        if self.model:
            where = ", ".join(part for part in (self.provider, self.tier) if part)
            verdict += f" on {self.model}" + (f" ({where})" if where else "")
        lines = [f"decision {self.decision_id}: {verdict}"]
        if self.reason:
            lines.append(f"  reason: {self.reason}")
        if self.allowed:
            lines.append(
                f"  cost: estimated {format_usd(self.estimated_cost_nanos, 6)}, "
                f"reserved {format_usd(self.reserved_cost_nanos, 6)} "
                f"(output capped at {self.max_output_tokens:,} tokens)"
            )
        if self.action is Action.THROTTLE:
            lines.append(f"  retry after: {self.retry_after_ms} ms")
        if self.approval_id:
            lines.append(f"  approval id: {self.approval_id}")
        if self.rules:
            lines.append("  rules fired:")
            for fired in self.rules:
                lines.append(f"    - {fired.rule}" + (f": {fired.detail}" if fired.detail else ""))
        else:
            lines.append("  rules fired: none")
        if self.config_version:
            lines.append(f"  config version: {self.config_version}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ReportResult:
    """How the sidecar took one usage report; a rejected report names why in `error`."""

    decision_id: str
    accepted: bool
    cost_nanos: int = 0
    duplicate: bool = False
    error: str = ""
