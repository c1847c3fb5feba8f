"""The values a routing decision is made of: the request, the answer, the rules that fired.

`RouteRequest` is what a service asks, `Decision` what the sidecar answers, and
`RuleFired` one named reason in between. `Candidate` is a model still in the
running for one request, with the output cap and worst-case cost it would have.
These are plain values shared by the engine's steps, the decider, usage and the
gRPC edge; nothing here decides anything.

Pure: must not import gRPC or the wire types (`faregate.v1`), nor read a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from faregate.model import Action, Complexity, Model, Priority, RiskLevel, Sensitivity

if TYPE_CHECKING:
    from sidecar.leases import Hold

NO_LABELS: Mapping[str, str] = MappingProxyType({})


def no_labels() -> Mapping[str, str]:
    """Default factory: dataclasses refuse a mappingproxy as a plain default."""
    return NO_LABELS


class RequestError(ValueError):
    """A request that cannot be decided as sent; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RuleFired(NamedTuple):
    """One rule that shaped a decision, named as operators know it.

    `rule` is a bounded name (a rule kind plus at most a configured name, e.g.
    `ceiling:summarization-cost.max_cost`); everything request-specific (model
    names, costs, approval ids) goes in `detail`, so `rule` can label metrics."""

    rule: str
    detail: str


@dataclass(frozen=True, slots=True)
class RouteRequest:
    capability: str
    tenant: str = ""
    team: str = ""
    sensitivity: Sensitivity = Sensitivity.INTERNAL
    risk: RiskLevel = RiskLevel.LOW
    priority: Priority = Priority.INTERACTIVE
    complexity: Complexity = Complexity.UNSPECIFIED
    complexity_score: float | None = None
    input_tokens: int = 0
    max_output_tokens: int = 0
    labels: Mapping[str, str] = field(default_factory=no_labels)
    idempotency_key: str = ""
    approval_id: str = ""
    required_compliance_tags: tuple[str, ...] = ()
    trace_id: str = ""
    # Decide and explain without effects: no throttle tokens, no approval request,
    # nothing remembered for Report or for idempotent retries.
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    action: Action
    config_version: str
    model: str = ""
    provider: str = ""
    tier: str = ""
    estimated_cost_nanos: int = 0
    reserved_cost_nanos: int = 0
    max_output_tokens: int = 0
    rules: tuple[RuleFired, ...] = ()
    approval_id: str = ""
    retry_after_ms: int = 0
    reason: str = ""
    # What was taken from each covering budget's lease, for Report to settle. Only on
    # decisions that let the call run and were not dry runs; never sent on the wire.
    reservation: tuple[Hold, ...] = ()

    @property
    def allows_call(self) -> bool:
        return self.action in (Action.ALLOW, Action.DOWNGRADE)


class Candidate(NamedTuple):
    """A model still in the running, with what a call on it may cost at most.

    A tuple rather than a dataclass: several are built per request, on the hot path."""

    model: Model
    max_output_tokens: int
    worst_case_cost_nanos: int
