"""Routing strategies and the downgrade chain, table-driven over the test catalog.

Worst cases for 1,000 tokens in and 500 out: tiny 300_000, small 450_000, local
550_000, tagged 600_000, big 10_500_000 (offline is unavailable).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType

import pytest

from faregate.model import Action, Capability, Complexity, Model, RoutingPolicy, Sensitivity
from sidecar.decision import RouteRequest
from sidecar.routing import complexity_level
from tests.unit.sidecar.catalog import (
    BIG,
    LOCAL,
    OFFLINE,
    SMALL,
    TAGGED,
    TINY,
    Engine,
    make_snapshot,
    rule_names,
)

CANDIDATES = ("big", "small", "tiny", "local", "tagged", "offline")


def chat(routing: RoutingPolicy) -> Capability:
    return Capability("chat", "", 500, CANDIDATES, routing)


def rated(**quality: float) -> tuple[Model, ...]:
    models = {m.name: m for m in (BIG, SMALL, TINY, LOCAL, TAGGED, OFFLINE)}
    for name, value in quality.items():
        models[name] = dataclasses.replace(models[name], quality=MappingProxyType({"chat": value}))
    return tuple(models.values())


@dataclass(frozen=True)
class Case:
    name: str
    routing: RoutingPolicy
    request: RouteRequest
    action: Action
    model: str
    rule: str


QUALITY = rated(big=0.95, small=0.8, tiny=0.5, local=0.7)
TIERS = MappingProxyType({"low": "small", "medium": "local, small", "high": "large"})

CASES = [
    Case(
        "cheapest",
        RoutingPolicy(),
        RouteRequest("chat", input_tokens=1_000),
        Action.ALLOW,
        "tiny",
        "routing:cheapest",
    ),
    Case(
        "cheapest-qualified skips the cheaper unqualified model",
        RoutingPolicy("cheapest-qualified", quality_floor=0.75),
        RouteRequest("chat", input_tokens=1_000),
        Action.ALLOW,
        "small",
        "routing:cheapest-qualified",
    ),
    Case(
        "cheapest-qualified: a floor nobody reaches is DENY",
        RoutingPolicy("cheapest-qualified", quality_floor=0.99),
        RouteRequest("chat", input_tokens=1_000),
        Action.DENY,
        "",
        "quality-floor:chat",
    ),
    Case(
        "complexity enum picks the tiers",
        RoutingPolicy("complexity-tiers", complexity_tiers=TIERS),
        RouteRequest("chat", complexity=Complexity.HIGH, input_tokens=1_000),
        Action.ALLOW,
        "big",
        "routing:complexity-tiers",
    ),
    Case(
        "no complexity given is medium: cheapest of local and small tiers",
        RoutingPolicy("complexity-tiers", complexity_tiers=TIERS),
        RouteRequest("chat", input_tokens=1_000),
        Action.ALLOW,
        "tiny",
        "routing:complexity-tiers",
    ),
    Case(
        "a score overrides the enum",
        RoutingPolicy("complexity-tiers", complexity_tiers=TIERS),
        RouteRequest("chat", complexity=Complexity.LOW, complexity_score=0.7, input_tokens=1_000),
        Action.ALLOW,
        "big",
        "routing:complexity-tiers",
    ),
    Case(
        "no tier configured for the level: cheapest overall",
        RoutingPolicy("complexity-tiers", complexity_tiers=TIERS),
        RouteRequest("chat", complexity=Complexity.REASONING, input_tokens=1_000),
        Action.ALLOW,
        "tiny",
        "complexity:fallback",
    ),
    Case(
        "ordered: first allowed in configured order",
        RoutingPolicy("ordered"),
        RouteRequest("chat", input_tokens=1_000),
        Action.ALLOW,
        "big",
        "routing:ordered",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_strategies(case: Case) -> None:
    engine = Engine(make_snapshot(models=QUALITY, capabilities=(chat(case.routing),)))
    decision = engine.route(case.request)
    assert decision.action is case.action
    assert decision.model == case.model
    assert rule_names(decision)[-1] == case.rule
    assert decision.reason


def test_complexity_fallback_when_the_tier_has_no_allowed_model() -> None:
    tiers = MappingProxyType({"high": "large"})
    routing = RoutingPolicy("complexity-tiers", complexity_tiers=tiers)
    engine = Engine(make_snapshot(capabilities=(chat(routing),)))
    # Confidential data leaves only local and tagged: no large model is allowed.
    decision = engine.route(
        RouteRequest(
            "chat",
            complexity=Complexity.HIGH,
            sensitivity=Sensitivity.CONFIDENTIAL,
            input_tokens=1_000,
        )
    )
    assert decision.model == "local"
    assert "complexity:fallback" in rule_names(decision)
    assert (
        "no allowed model in tiers large for high complexity"
        in dict(decision.rules)["complexity:fallback"]
    )


def test_quality_floor_deny_lists_the_qualities() -> None:
    routing = RoutingPolicy("cheapest-qualified", quality_floor=0.99)
    engine = Engine(make_snapshot(models=QUALITY, capabilities=(chat(routing),)))
    decision = engine.route(RouteRequest("chat"))
    detail = dict(decision.rules)["quality-floor:chat"]
    assert "big (0.95)" in detail and "tagged (unrated)" in detail
    assert "quality floor 0.99" in decision.reason


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0.0, "low"),
        (0.2499, "low"),
        (0.25, "medium"),
        (0.49, "medium"),
        (0.5, "high"),
        (0.79, "high"),
        (0.8, "reasoning"),
        (1.0, "reasoning"),
    ],
)
def test_complexity_score_levels(score: float, level: str) -> None:
    assert complexity_level(RouteRequest("chat", complexity_score=score)) == level


def test_complexity_level_defaults_to_medium() -> None:
    assert complexity_level(RouteRequest("chat")) == "medium"
    assert complexity_level(RouteRequest("chat", complexity=Complexity.REASONING)) == "reasoning"
