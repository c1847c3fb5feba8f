"""Guardrails and governance rules: their typed form and their JSON form in a snapshot.

The control plane validates the YAML (with line numbers) into these values and
writes them into the snapshot with `guardrails_to_json` / `governance_to_json`;
the sidecar reads them back with `guardrails_from_json` / `governance_from_json`
once per snapshot. Money is integer nano-USD here, never a float. The schema is
described for operators in docs/policy.md.

Pure: must not import gRPC, SQLAlchemy or the wire types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from faregate.model import Priority, RiskLevel

COST_BANDS = ("low", "medium", "high")
GOVERNANCE_ACTIONS = ("allow", "approval", "deny")
DEFAULT_RESERVES: Mapping[str, float] = MappingProxyType(
    {Priority.INTERACTIVE.value: 0.0, Priority.BATCH.value: 0.2, Priority.BACKGROUND.value: 0.4}
)
# Default cost-band upper bounds: below $0.01 is low, below $0.25 medium, the rest high.
DEFAULT_BAND_LIMITS_NANOS: tuple[int, int] = (10_000_000, 250_000_000)
# Default risk x cost band matrix: low risk and low cost run automatically,
# high risk and high cost need approval, critical and high cost is refused.
DEFAULT_MATRIX: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        RiskLevel.LOW.value: {"low": "allow", "medium": "allow", "high": "allow"},
        RiskLevel.MEDIUM.value: {"low": "allow", "medium": "allow", "high": "approval"},
        RiskLevel.HIGH.value: {"low": "allow", "medium": "approval", "high": "approval"},
        RiskLevel.CRITICAL.value: {"low": "approval", "medium": "approval", "high": "deny"},
    }
)
DEFAULT_APPROVAL_TTL_MS = 3_600_000
DEFAULT_GRANT_MS = 3_600_000


class PolicyDecodeError(ValueError):
    """A guardrails or governance section that a snapshot cannot carry."""


@dataclass(frozen=True, slots=True)
class Match:
    """Which requests a rule applies to; an empty field matches everything."""

    capability: str = ""
    tenant: str = ""
    team: str = ""
    priority: str = ""

    def matches(self, capability: str, tenant: str, team: str, priority: str) -> bool:
        return (
            (not self.capability or self.capability == capability)
            and (not self.tenant or self.tenant == tenant)
            and (not self.team or self.team == team)
            and (not self.priority or self.priority == priority)
        )


@dataclass(frozen=True, slots=True)
class Ceiling:
    """Per-request limits. Over the cost ceiling → downgrade under it, else DENY;
    input over `max_input_tokens` → DENY; output above `max_output_tokens` is capped."""

    name: str
    match: Match = Match()
    max_cost_nanos: int = 0  # 0: no cost ceiling
    max_input_tokens: int = 0  # 0: no limit
    max_output_tokens: int = 0  # 0: no limit


@dataclass(frozen=True, slots=True)
class BlockedPath:
    """Removes matching models (by name, tier or provider) from the candidates."""

    name: str
    match: Match = Match()
    model: str = ""
    tier: str = ""
    provider: str = ""


@dataclass(frozen=True, slots=True)
class Throttle:
    """Token buckets per (tenant, capability) for the requests the rule matches.

    `reserves[priority]` is the share of each bucket that only higher classes may
    use: with batch at 0.2, batch traffic is refused once less than 20% remains,
    while interactive traffic can still drain it to zero."""

    name: str
    match: Match = Match()
    requests_per_second: float = 0.0  # 0: no request bucket
    burst: float = 0.0  # request bucket size; 0: one second's worth, at least 1
    tokens_per_minute: int = 0  # 0: no token bucket (input + max output tokens)
    reserves: Mapping[str, float] = field(default_factory=lambda: DEFAULT_RESERVES)


@dataclass(frozen=True, slots=True)
class Guardrails:
    ceilings: tuple[Ceiling, ...] = ()
    blocked: tuple[BlockedPath, ...] = ()
    throttles: tuple[Throttle, ...] = ()


@dataclass(frozen=True, slots=True)
class Governance:
    """Risk level x estimated-cost band → allow, approval or deny."""

    band_limits_nanos: tuple[int, int] = DEFAULT_BAND_LIMITS_NANOS  # low <, medium <
    matrix: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: DEFAULT_MATRIX)
    approval_ttl_ms: int = DEFAULT_APPROVAL_TTL_MS  # how long a request waits for a decision
    default_grant_ms: int = DEFAULT_GRANT_MS  # how long an approval stays valid
    default_max_uses: int = 1

    def band(self, estimated_cost_nanos: int) -> str:
        low, medium = self.band_limits_nanos
        if estimated_cost_nanos < low:
            return "low"
        return "medium" if estimated_cost_nanos < medium else "high"

    def action(self, risk: str, band: str) -> str:
        return self.matrix.get(risk, {}).get(band, "allow")


def _match_to_json(match: Match) -> dict[str, str]:
    return {k: v for k, v in _fields(match).items() if v}


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


def guardrails_to_json(guardrails: Guardrails) -> dict[str, Any]:
    def rule(value: Any) -> dict[str, Any]:
        out = {k: v for k, v in _fields(value).items() if k != "match"}
        if "reserves" in out:
            out["reserves"] = dict(out["reserves"])
        out["match"] = _match_to_json(value.match)
        return out

    return {
        "ceilings": [rule(c) for c in guardrails.ceilings],
        "blocked": [rule(b) for b in guardrails.blocked],
        "throttles": [rule(t) for t in guardrails.throttles],
    }


def governance_to_json(governance: Governance) -> dict[str, Any]:
    return {
        "band_limits_nanos": list(governance.band_limits_nanos),
        "matrix": {risk: dict(row) for risk, row in governance.matrix.items()},
        "approval_ttl_ms": governance.approval_ttl_ms,
        "default_grant_ms": governance.default_grant_ms,
        "default_max_uses": governance.default_max_uses,
    }


def _match_from_json(data: Any, where: str) -> Match:
    if not isinstance(data, Mapping):
        raise PolicyDecodeError(f"{where}.match: must be an object")
    unknown = set(data) - set(Match.__dataclass_fields__)
    if unknown:
        raise PolicyDecodeError(f"{where}.match: unknown keys {sorted(unknown)}")
    return Match(**{k: str(v) for k, v in data.items()})


def _rule_from_json(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise PolicyDecodeError(f"{where}: must be an object")
    values = dict(data)
    match = _match_from_json(values.pop("match", {}), where)
    unknown = set(values) - set(cls.__dataclass_fields__)
    if unknown:
        raise PolicyDecodeError(f"{where}: unknown keys {sorted(unknown)}")
    if "reserves" in values:
        values["reserves"] = MappingProxyType(
            {str(k): float(v) for k, v in dict(values["reserves"]).items()}
        )
    try:
        return cls(match=match, **values)
    except TypeError as exc:
        raise PolicyDecodeError(f"{where}: {exc}") from exc


def guardrails_from_json(data: Mapping[str, Any]) -> Guardrails:
    """Typed guardrails from a snapshot's section; an empty section means none."""
    unknown = set(data) - {"ceilings", "blocked", "throttles"}
    if unknown:
        raise PolicyDecodeError(f"guardrails: unknown keys {sorted(unknown)}")
    return Guardrails(
        ceilings=tuple(
            _rule_from_json(Ceiling, c, f"guardrails.ceilings[{i}]")
            for i, c in enumerate(data.get("ceilings", ()))
        ),
        blocked=tuple(
            _rule_from_json(BlockedPath, b, f"guardrails.blocked[{i}]")
            for i, b in enumerate(data.get("blocked", ()))
        ),
        throttles=tuple(
            _rule_from_json(Throttle, t, f"guardrails.throttles[{i}]")
            for i, t in enumerate(data.get("throttles", ()))
        ),
    )


def governance_from_json(data: Mapping[str, Any]) -> Governance:
    """Typed governance from a snapshot's section; an empty section means the defaults."""
    if not data:
        return Governance()
    unknown = set(data) - set(Governance.__dataclass_fields__)
    if unknown:
        raise PolicyDecodeError(f"governance: unknown keys {sorted(unknown)}")
    try:
        low, medium = (int(v) for v in data.get("band_limits_nanos", DEFAULT_BAND_LIMITS_NANOS))
        matrix = data.get("matrix", DEFAULT_MATRIX)
        return Governance(
            band_limits_nanos=(low, medium),
            matrix=MappingProxyType(
                {str(r): MappingProxyType(dict(row)) for r, row in dict(matrix).items()}
            ),
            approval_ttl_ms=int(data.get("approval_ttl_ms", DEFAULT_APPROVAL_TTL_MS)),
            default_grant_ms=int(data.get("default_grant_ms", DEFAULT_GRANT_MS)),
            default_max_uses=int(data.get("default_max_uses", 1)),
        )
    except (TypeError, ValueError) as exc:
        raise PolicyDecodeError(f"governance: {exc}") from exc
