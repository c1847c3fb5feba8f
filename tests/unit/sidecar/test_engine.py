"""The decision engine, table-driven: which model each request gets, and why."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from faregate.model import Action, Capability, Sensitivity
from faregate.pricing import MAX_TOKENS, worst_case_cost_nanos
from sidecar.engine import Decision, RequestError, RouteRequest, decide
from tests.unit.sidecar.catalog import (
    CHAT,
    LOCAL,
    SMALL,
    TINY,
    make_snapshot,
    model,
)

SNAPSHOT = make_snapshot()


def route(request: RouteRequest) -> Decision:
    return decide(SNAPSHOT, request, "d-1")


@dataclass(frozen=True)
class Case:
    name: str
    request: RouteRequest
    model: str
    rules: tuple[str, ...]


CASES = [
    Case(
        "cheapest available model wins",
        RouteRequest("chat", input_tokens=1_000),
        "tiny",
        ("model:unavailable", "routing:cheapest"),
    ),
    Case(
        "public data may use any model",
        RouteRequest("chat", sensitivity=Sensitivity.PUBLIC, input_tokens=1_000),
        "tiny",
        ("model:unavailable", "routing:cheapest"),
    ),
    Case(
        "confidential stays on local or confidential-tagged models",
        RouteRequest("chat", sensitivity=Sensitivity.CONFIDENTIAL, input_tokens=1_000),
        "local",
        ("model:unavailable", "sensitivity:confidential->local-only", "routing:cheapest"),
    ),
    Case(
        "confidential goes to a tagged model when the local one is too small",
        RouteRequest("chat", sensitivity=Sensitivity.CONFIDENTIAL, input_tokens=40_000),
        "tagged",
        (
            "model:unavailable",
            "sensitivity:confidential->local-only",
            "context-window:too-small",
            "routing:cheapest",
        ),
    ),
    Case(
        "regulated data: a confidential tag is not enough",
        RouteRequest("chat", sensitivity=Sensitivity.REGULATED, input_tokens=1_000),
        "local",
        ("model:unavailable", "sensitivity:regulated->local-only", "routing:cheapest"),
    ),
    Case(
        "required compliance tags must all be on the model",
        RouteRequest("chat", input_tokens=1_000, required_compliance_tags=("soc2",)),
        "small",
        ("model:unavailable", "compliance:required-tags", "routing:cheapest"),
    ),
    Case(
        "context window must hold input plus output",
        RouteRequest("chat", input_tokens=15_600),
        "small",
        ("model:unavailable", "context-window:too-small", "routing:cheapest"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_routes_to_the_cheapest_allowed_model(case: Case) -> None:
    decision = route(case.request)
    assert decision.action is Action.ALLOW
    assert decision.model == case.model
    assert tuple(rule for rule, _ in decision.rules) == case.rules
    assert decision.decision_id == "d-1"
    assert decision.config_version == SNAPSHOT.version


def test_allowed_decision_explains_itself() -> None:
    decision = route(RouteRequest("chat", input_tokens=1_000))
    assert decision.provider == TINY.provider
    assert decision.tier == TINY.tier
    assert decision.max_output_tokens == CHAT.default_max_output_tokens
    assert decision.estimated_cost_nanos == worst_case_cost_nanos(TINY, 1_000, 500) == 300_000
    assert decision.reserved_cost_nanos == 0  # no budgets yet, so nothing is reserved
    rules = dict(decision.rules)
    assert "offline (unavailable)" in rules["model:unavailable"]
    assert rules["routing:cheapest"] == "tiny at 300000 nanos worst case, cheapest of 5"


def test_sensitivity_rule_names_the_removed_models() -> None:
    decision = route(RouteRequest("chat", sensitivity=Sensitivity.CONFIDENTIAL))
    detail = dict(decision.rules)["sensitivity:confidential->local-only"]
    for name in ("big", "small", "tiny"):
        assert f"{name} (external, not tagged 'confidential')" in detail
    assert "local (" not in detail
    assert "tagged (" not in detail


@pytest.mark.parametrize(
    ("request_", "expected_rules"),
    [
        (
            RouteRequest("chat", sensitivity=Sensitivity.REGULATED, input_tokens=40_000),
            ("model:unavailable", "sensitivity:regulated->local-only", "context-window:too-small"),
        ),
        (
            RouteRequest("chat", required_compliance_tags=("soc2", "hipaa")),
            ("model:unavailable", "compliance:required-tags"),
        ),
        (
            RouteRequest("chat", input_tokens=1_000_000),
            ("model:unavailable", "context-window:too-small"),
        ),
    ],
    ids=["regulated and too long", "unknown compliance tag", "prompt fits nowhere"],
)
def test_nothing_fits_is_a_deny_with_the_reason(
    request_: RouteRequest, expected_rules: tuple[str, ...]
) -> None:
    decision = route(request_)
    assert decision.action is Action.DENY
    assert decision.model == ""
    assert decision.estimated_cost_nanos == 0
    assert tuple(rule for rule, _ in decision.rules) == expected_rules
    assert "chat" in decision.reason
    for rule in expected_rules:
        assert rule in decision.reason


def test_unavailable_model_is_skipped_even_when_cheapest() -> None:
    snapshot = make_snapshot()
    decision = decide(snapshot, RouteRequest("chat"), "d")
    assert decision.model != "offline"
    assert "model:unavailable" in dict(decision.rules)


@pytest.mark.parametrize(
    ("capability", "requested", "model_name", "expected"),
    [
        ("chat", 0, "tiny", 500),  # 0 means the capability's default
        ("chat", 100, "tiny", 100),
        ("chat", 5_000, "tiny", 2_048),  # capped by the model's own maximum
        ("essay", 0, "tiny", 2_048),  # a default larger than the model's maximum, capped
    ],
)
def test_max_output_tokens_default_and_cap(
    capability: str, requested: int, model_name: str, expected: int
) -> None:
    decision = route(RouteRequest(capability, max_output_tokens=requested))
    assert decision.model == model_name
    assert decision.max_output_tokens == expected
    assert decision.estimated_cost_nanos == worst_case_cost_nanos(TINY, 0, expected)


def test_deny_reports_the_output_cap_it_considered() -> None:
    decision = route(RouteRequest("chat", input_tokens=10_000_000))
    assert decision.max_output_tokens == CHAT.default_max_output_tokens


def test_tie_goes_to_candidate_order() -> None:
    twin_a, twin_b = model("twin-a"), model("twin-b")
    capability = Capability("pair", "", 100, ("twin-b", "twin-a"))
    snapshot = make_snapshot(models=(twin_a, twin_b), capabilities=(capability,))
    assert decide(snapshot, RouteRequest("pair"), "d").model == "twin-b"


def test_cheapest_depends_on_the_request_size() -> None:
    # Output-heavy requests favour the model with cheaper output tokens.
    capability = Capability("mix", "", 100, ("small", "local"))
    snapshot = make_snapshot(models=(SMALL, LOCAL), capabilities=(capability,))
    assert decide(snapshot, RouteRequest("mix", max_output_tokens=4_000), "d").model == "local"
    assert decide(snapshot, RouteRequest("mix", input_tokens=20_000), "d").model == "small"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (RouteRequest(""), "capability"),
        (RouteRequest("poetry"), "capability"),
        (RouteRequest("chat", input_tokens=-1), "input_tokens"),
        (RouteRequest("chat", max_output_tokens=-5), "max_output_tokens"),
        (RouteRequest("chat", complexity_score=1.5), "complexity_score"),
        (RouteRequest("chat", complexity_score=-0.1), "complexity_score"),
        (RouteRequest("chat", complexity_score=math.nan), "complexity_score"),
    ],
)
def test_invalid_requests_name_the_field(request_: RouteRequest, field: str) -> None:
    with pytest.raises(RequestError) as caught:
        route(request_)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_unknown_capability_lists_the_known_ones() -> None:
    with pytest.raises(RequestError, match=r"unknown capability 'poetry' \(known: chat, essay\)"):
        route(RouteRequest("poetry"))


@pytest.mark.parametrize("score", [0.0, 0.5, 1.0])
def test_complexity_score_bounds_are_inclusive(score: float) -> None:
    assert route(RouteRequest("chat", complexity_score=score)).action is Action.ALLOW


def test_token_counts_beyond_the_cap_are_refused_naming_the_field() -> None:
    snapshot = make_snapshot()
    capability = snapshot.capabilities[0].name
    for field in ("input_tokens", "max_output_tokens"):
        request = RouteRequest(capability, **{field: MAX_TOKENS + 1})  # type: ignore[arg-type]
        with pytest.raises(RequestError) as error:
            decide(snapshot, request, "d-1")
        assert error.value.field == field
