"""A snapshot compiled for deciding: everything per-request work would otherwise redo.

Once per snapshot (when it is applied) the guardrails and governance sections are
decoded, and each capability gets its candidate models in configured order with
their price rates flattened, the sensitivities each may serve, the routing strategy
with its complexity tiers parsed, and the ceilings, blocked paths, throttles and
budgets whose `capability` key can match it. A section that does not decode raises
`PolicyDecodeError`, so the snapshot is NACKed and never served. `PolicyCache`
keeps the compiled form of the last snapshots by identity, shared by the snapshot
store (which compiles on apply) and the decider (which looks it up per request).

Pure: must not import gRPC or the wire types (`faregate.v1`), nor read a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from faregate.model import (
    Budget,
    Capability,
    Complexity,
    Locality,
    Model,
    Sensitivity,
    Snapshot,
)
from faregate.policy import (
    GOVERNANCE_ACTIONS,
    BlockedPath,
    Ceiling,
    Governance,
    Guardrails,
    PolicyDecodeError,
    governance_from_json,
    guardrails_from_json,
)
from faregate.pricing import TOKENS_PER_MTOK
from sidecar.throttle import CompiledThrottle, compile_throttle

_EVERYONE = frozenset(Sensitivity)
_OPEN = frozenset({Sensitivity.PUBLIC, Sensitivity.INTERNAL})
COMPLEXITY_LEVELS = (
    Complexity.LOW.value,
    Complexity.MEDIUM.value,
    Complexity.HIGH.value,
    Complexity.REASONING.value,
)


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One candidate model, with what filtering and pricing need precomputed."""

    model: Model
    allowed_sensitivities: frozenset[Sensitivity]
    tags: frozenset[str]
    input_rate: int  # nanos per Mtok below the first price tier
    output_rate: int
    # (min_input_tokens, input rate, output rate), last configured tier first.
    tiers_last_first: tuple[tuple[int, int, int], ...]

    def worst_case_cost_nanos(self, input_tokens: int, output_tokens: int) -> int:
        """Same as `faregate.pricing.worst_case_cost_nanos`, without re-reading the price."""
        input_rate, output_rate = self.input_rate, self.output_rate
        for min_input, tier_input, tier_output in self.tiers_last_first:
            if input_tokens >= min_input:
                input_rate, output_rate = tier_input, tier_output
                break
        scaled = input_tokens * input_rate + output_tokens * output_rate
        return -(-scaled // TOKENS_PER_MTOK)


@dataclass(frozen=True, slots=True)
class BlockRule:
    """A blocked path reduced to the capability's candidates it removes."""

    rule: BlockedPath
    models: frozenset[str]


@dataclass(frozen=True, slots=True)
class CompiledCapability:
    capability: Capability
    entries: tuple[ModelEntry, ...]  # configured candidate order, known models only
    missing: tuple[str, ...]  # candidate names the catalog lacks
    strategy: str
    quality_floor: float
    complexity_tiers: Mapping[str, frozenset[str]]
    downgrade_chain: tuple[str, ...]  # explicit chain; empty means by descending cost
    ceilings: tuple[Ceiling, ...]
    blocked: tuple[BlockRule, ...]
    throttles: tuple[CompiledThrottle, ...]
    budgets: tuple[Budget, ...]  # those whose `capability` key can match it
    # Rule details that depend on nothing but the capability (and the sensitivity):
    # unavailable models are tested first, so what sensitivity removes is fixed too.
    unavailable_detail: str
    sensitivity_details: Mapping[Sensitivity, tuple[str, str]]  # rule name, detail


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    version: str
    guardrails: Guardrails
    governance: Governance
    capabilities: Mapping[str, CompiledCapability]


def _allowed_sensitivities(model: Model) -> frozenset[Sensitivity]:
    # Confidential and regulated data stay in house unless the model is certified for it.
    if model.locality is Locality.LOCAL:
        return _EVERYONE
    certified = (Sensitivity.CONFIDENTIAL, Sensitivity.REGULATED)
    return _OPEN | {s for s in certified if s.value in model.compliance_tags}


def model_entry(model: Model) -> ModelEntry:
    price = model.price
    return ModelEntry(
        model=model,
        allowed_sensitivities=frozenset(_allowed_sensitivities(model)),
        tags=frozenset(model.compliance_tags),
        input_rate=price.input_nanos_per_mtok,
        output_rate=price.output_nanos_per_mtok,
        tiers_last_first=tuple(
            (t.min_input_tokens, t.input_nanos_per_mtok, t.output_nanos_per_mtok)
            for t in reversed(price.tiers)
        ),
    )


def parse_tiers(value: str) -> frozenset[str]:
    """`"local, small"` → {local, small}: the control plane writes tier lists this way."""
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _blocks(rule: BlockedPath, model: Model) -> bool:
    # A model is blocked when it matches every target key the rule sets; a rule that
    # sets none blocks every model for the requests it matches.
    return (
        (not rule.model or rule.model == model.name)
        and (not rule.tier or rule.tier == model.tier)
        and (not rule.provider or rule.provider == model.provider)
    )


def _for_capability(name: str, capability: str) -> bool:
    return not name or name == capability


def compile_capability(
    capability: Capability,
    models: Mapping[str, ModelEntry],
    guardrails: Guardrails,
    budgets: tuple[Budget, ...] = (),
) -> CompiledCapability:
    entries = tuple(models[n] for n in capability.candidates if n in models)
    routing = capability.routing
    name = capability.name
    blocked = []
    for rule in guardrails.blocked:
        if _for_capability(rule.match.capability, name):
            hit = frozenset(e.model.name for e in entries if _blocks(rule, e.model))
            if hit:
                blocked.append(BlockRule(rule, hit))
    available = [e for e in entries if not e.model.unavailable]
    sensitivity_details = {}
    for sensitivity in Sensitivity:
        removed = [e.model for e in available if sensitivity not in e.allowed_sensitivities]
        sensitivity_details[sensitivity] = (
            f"sensitivity:{sensitivity.value}->local-only",
            "removed "
            + ", ".join(
                f"{m.name} ({m.locality.value}, not tagged {sensitivity.value!r})" for m in removed
            ),
        )
    unavailable = [e.model.name for e in entries if e.model.unavailable]
    return CompiledCapability(
        capability=capability,
        entries=entries,
        missing=tuple(n for n in capability.candidates if n not in models),
        strategy=routing.strategy or "cheapest",
        quality_floor=routing.quality_floor,
        complexity_tiers=MappingProxyType(
            {level: parse_tiers(tiers) for level, tiers in routing.complexity_tiers.items()}
        ),
        downgrade_chain=routing.downgrade_chain,
        ceilings=tuple(c for c in guardrails.ceilings if _for_capability(c.match.capability, name)),
        blocked=tuple(blocked),
        throttles=tuple(
            compile_throttle(t)
            for t in guardrails.throttles
            if _for_capability(t.match.capability, name)
        ),
        budgets=tuple(b for b in budgets if _for_capability(b.capability, name)),
        unavailable_detail="removed " + ", ".join(f"{n} (unavailable)" for n in unavailable),
        sensitivity_details=MappingProxyType(sensitivity_details),
    )


def _check_guardrails(guardrails: Guardrails) -> list[str]:
    problems: list[str] = []
    for ceiling in guardrails.ceilings:
        where = f"guardrails.ceilings {ceiling.name!r}"
        for key in ("max_cost_nanos", "max_input_tokens", "max_output_tokens"):
            if not isinstance(getattr(ceiling, key), int) or getattr(ceiling, key) < 0:
                problems.append(f"{where}: {key} must be a non-negative integer")
    for throttle in guardrails.throttles:
        where = f"guardrails.throttles {throttle.name!r}"
        numbers = (throttle.requests_per_second, throttle.burst, throttle.tokens_per_minute)
        if any(not isinstance(n, int | float) or not math.isfinite(n) or n < 0 for n in numbers):
            problems.append(f"{where}: rates and burst must be finite and non-negative")
        for priority, share in throttle.reserves.items():
            if not 0.0 <= share < 1.0:
                problems.append(f"{where}: reserve for {priority} must be in [0, 1)")
    return problems


def _check_governance(governance: Governance) -> list[str]:
    problems: list[str] = []
    low, medium = governance.band_limits_nanos
    if not 0 <= low <= medium:
        problems.append("governance: cost bands must satisfy 0 <= low <= medium")
    for risk, row in governance.matrix.items():
        for band, action in row.items():
            if action not in GOVERNANCE_ACTIONS:
                problems.append(f"governance.matrix.{risk}.{band}: unknown action {action!r}")
    if governance.approval_ttl_ms <= 0 or governance.default_grant_ms <= 0:
        problems.append("governance: approval_ttl_ms and default_grant_ms must be > 0")
    if governance.default_max_uses <= 0:
        problems.append("governance: default_max_uses must be > 0")
    return problems


def compile_policy(snapshot: Snapshot) -> CompiledPolicy:
    """Compile `snapshot` for deciding; raises PolicyDecodeError listing every problem."""
    try:
        guardrails = guardrails_from_json(snapshot.guardrails)
        governance = governance_from_json(snapshot.governance)
    except PolicyDecodeError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        # A section of the wrong shape (a number where a list belongs, ...).
        raise PolicyDecodeError(f"policy sections: {exc}") from exc
    problems = _check_guardrails(guardrails) + _check_governance(governance)
    for capability in snapshot.capabilities:
        for level in capability.routing.complexity_tiers:
            if level not in COMPLEXITY_LEVELS:
                problems.append(
                    f"capability {capability.name!r}: unknown complexity level {level!r}"
                )
    if problems:
        raise PolicyDecodeError("; ".join(problems))
    models = {m.name: model_entry(m) for m in snapshot.models}
    return CompiledPolicy(
        version=snapshot.version,
        guardrails=guardrails,
        governance=governance,
        capabilities=MappingProxyType(
            {
                c.name: compile_capability(c, models, guardrails, snapshot.budgets)
                for c in snapshot.capabilities
            }
        ),
    )


class PolicyCache:
    """The compiled policy of the last two snapshots seen, found by identity.

    Two, so that checking an incoming snapshot never evicts the one being served."""

    def __init__(self) -> None:
        self._entries: list[tuple[Snapshot, CompiledPolicy]] = []

    def get(self, snapshot: Snapshot) -> CompiledPolicy:
        """Raises PolicyDecodeError when `snapshot` cannot be compiled."""
        for known, policy in self._entries:
            if known is snapshot:
                return policy
        policy = compile_policy(snapshot)
        self._entries = [(snapshot, policy), *self._entries[:1]]
        return policy
