"""Blocked paths and ceilings, alone and together with routing and governance.

Worst cases for 1,000 tokens in and 500 out: tiny 300_000, small 450_000, local
550_000, tagged 600_000, big 10_500_000 (offline is unavailable).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from faregate.model import Action, Capability, Priority, RiskLevel, RoutingPolicy, Sensitivity
from faregate.policy import BlockedPath, Ceiling, Governance, Guardrails, Match
from sidecar.decision import RouteRequest
from sidecar.governance import TIMES
from tests.unit.sidecar.catalog import Engine, make_snapshot, rule_names

ORDERED = Capability(
    "chat",
    "",
    500,
    ("big", "small", "tiny", "local", "tagged", "offline"),
    RoutingPolicy("ordered"),
)
REQUEST = RouteRequest("chat", tenant="acme", input_tokens=1_000)


def engine(
    *,
    ceilings: tuple[Ceiling, ...] = (),
    blocked: tuple[BlockedPath, ...] = (),
    capability: Capability = ORDERED,
    governance: Governance | None = None,
) -> Engine:
    guardrails = Guardrails(ceilings=ceilings, blocked=blocked)
    return Engine(
        make_snapshot(capabilities=(capability,), guardrails=guardrails, governance=governance)
    )


@dataclass(frozen=True)
class BlockCase:
    name: str
    rule: BlockedPath
    request: RouteRequest
    model: str


BLOCK_CASES = [
    BlockCase("by model", BlockedPath("no-big", model="big"), REQUEST, "small"),
    BlockCase("by tier", BlockedPath("no-large", tier="large"), REQUEST, "small"),
    BlockCase("by provider", BlockedPath("no-big-inc", provider="big-inc"), REQUEST, "small"),
    BlockCase(
        "only for batch",
        BlockedPath("no-large-batch", Match(priority="batch"), tier="large"),
        RouteRequest("chat", priority=Priority.BATCH, input_tokens=1_000),
        "small",
    ),
    BlockCase(
        "for another tenant: not applied",
        BlockedPath("globex-no-big", Match(tenant="globex"), model="big"),
        REQUEST,
        "big",
    ),
    BlockCase(
        "for another capability: not applied",
        BlockedPath("essay-no-big", Match(capability="essay"), model="big"),
        REQUEST,
        "big",
    ),
]


@pytest.mark.parametrize("case", BLOCK_CASES, ids=[c.name for c in BLOCK_CASES])
def test_blocked_paths_remove_models(case: BlockCase) -> None:
    decision = engine(blocked=(case.rule,)).route(case.request)
    assert decision.model == case.model
    fired = f"blocked:{case.rule.name}" in rule_names(decision)
    assert fired == (case.model != "big")


def test_blocked_rule_names_the_models() -> None:
    decision = engine(blocked=(BlockedPath("no-large", tier="large"),)).route(REQUEST)
    assert dict(decision.rules)["blocked:no-large"] == "removed big (blocked (tier large))"


def test_blocked_and_sensitivity_leaving_nothing_is_a_deny_naming_both() -> None:
    rule = BlockedPath("no-local-for-acme", Match(tenant="acme"), tier="local")
    capability = Capability("chat", "", 500, ("big", "local"))
    decision = engine(blocked=(rule,), capability=capability).route(
        RouteRequest("chat", tenant="acme", sensitivity=Sensitivity.CONFIDENTIAL)
    )
    assert decision.action is Action.DENY
    assert rule_names(decision) == (
        "sensitivity:confidential->local-only",
        "blocked:no-local-for-acme",
    )
    assert "sensitivity:confidential->local-only" in decision.reason
    assert "blocked:no-local-for-acme" in decision.reason


def test_a_blocked_rule_without_target_blocks_every_model_it_matches() -> None:
    rule = BlockedPath("no-batch-chat", Match(priority="batch"))
    decision = engine(blocked=(rule,)).route(RouteRequest("chat", priority=Priority.BATCH))
    assert decision.action is Action.DENY
    assert rule_names(decision) == ("model:unavailable", "blocked:no-batch-chat")


def test_input_over_a_ceiling_is_denied() -> None:
    ceiling = Ceiling("chat-input", max_input_tokens=999)
    decision = engine(ceilings=(ceiling,)).route(REQUEST)
    assert decision.action is Action.DENY
    assert rule_names(decision) == ("ceiling:chat-input.max_input_tokens",)
    assert decision.model == ""
    assert "chat-input" in decision.reason


def test_output_above_a_ceiling_is_capped_and_priced_capped() -> None:
    ceiling = Ceiling("chat-output", max_output_tokens=100)
    decision = engine(ceilings=(ceiling,)).route(REQUEST)
    assert decision.max_output_tokens == 100
    assert rule_names(decision)[0] == "ceiling:chat-output.max_output_tokens"
    # big: 1,000 in at $3/M + 100 out at $15/M
    assert decision.estimated_cost_nanos == 3_000_000 + 1_500_000


def test_cost_over_a_ceiling_walks_down_the_chain() -> None:
    ceiling = Ceiling("chat-cost", max_cost_nanos=500_000)
    decision = engine(ceilings=(ceiling,)).route(REQUEST)
    # Ordered ranks big first; descending cost: big, tagged, local, small, tiny.
    assert decision.action is Action.DOWNGRADE
    assert decision.model == "small"
    assert decision.estimated_cost_nanos == 450_000
    assert rule_names(decision) == (
        "model:unavailable",
        "routing:ordered",
        "ceiling:chat-cost.max_cost",
    )
    assert "down the chain to small" in dict(decision.rules)["ceiling:chat-cost.max_cost"]


def test_cost_ceiling_follows_an_explicit_chain() -> None:
    capability = Capability(
        "chat",
        "",
        500,
        ORDERED.candidates,
        RoutingPolicy("ordered", downgrade_chain=("big", "local", "tiny")),
    )
    decision = engine(
        ceilings=(Ceiling("c", max_cost_nanos=600_000),), capability=capability
    ).route(REQUEST)
    assert decision.model == "local"


def test_nothing_under_the_cost_ceiling_is_a_deny() -> None:
    decision = engine(ceilings=(Ceiling("tight", max_cost_nanos=1_000),)).route(REQUEST)
    assert decision.action is Action.DENY
    assert rule_names(decision)[-1] == "ceiling:tight.max_cost"
    assert decision.model == ""
    assert decision.estimated_cost_nanos == 10_500_000  # what the first choice would cost
    assert "tight" in decision.reason


def test_the_lowest_applicable_cost_ceiling_binds() -> None:
    ceilings = (
        Ceiling("loose", max_cost_nanos=5_000_000),
        Ceiling("tight-for-acme", Match(tenant="acme"), max_cost_nanos=400_000),
        Ceiling("globex", Match(tenant="globex"), max_cost_nanos=1),
    )
    decision = engine(ceilings=ceilings).route(REQUEST)
    assert decision.model == "tiny"
    assert rule_names(decision)[-2:] == (
        "ceiling:loose.max_cost",
        "ceiling:tight-for-acme.max_cost",
    )


def test_ceiling_downgrade_then_governance_on_the_downgraded_cost() -> None:
    # Bands: low < 400_000 <= medium < 1_000_000 <= high. High risk at medium cost
    # needs approval; big (10.5M, high band) is brought under 500_000 by the
    # ceiling first, so governance sees small at 450_000: medium band.
    governance = Governance(band_limits_nanos=(400_000, 1_000_000))
    ceiling = Ceiling("chat-cost", max_cost_nanos=500_000)
    e = engine(ceilings=(ceiling,), governance=governance)
    decision = e.route(RouteRequest("chat", tenant="acme", risk=RiskLevel.HIGH, input_tokens=1_000))
    assert decision.action is Action.APPROVAL_REQUIRED
    assert rule_names(decision)[-2:] == (
        "ceiling:chat-cost.max_cost",
        f"governance:high{TIMES}medium->approval",
    )
    assert decision.estimated_cost_nanos == 450_000
    # Medium risk at medium cost is allowed: the downgrade stands.
    decision = e.route(
        RouteRequest("chat", tenant="acme", risk=RiskLevel.MEDIUM, input_tokens=1_000)
    )
    assert decision.action is Action.DOWNGRADE
    assert decision.model == "small"
