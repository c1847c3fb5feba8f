"""clients.router_results: the text `RouteResult.explain()` gives a person."""

from __future__ import annotations

from clients.router_results import RouteResult, RuleFired
from faregate.model import Action


def test_explain_an_allowed_decision() -> None:
    result = RouteResult(
        decision_id="d-42",
        action=Action.ALLOW,
        model="llama-3.3-70b-local",
        provider="on-prem-vllm",
        tier="local",
        estimated_cost_nanos=1_250_000,
        reserved_cost_nanos=2_000_000,
        max_output_tokens=1500,
        rules=(RuleFired("sensitivity:confidential->local-only", "3 candidates removed"),),
        config_version="vabc",
        reason="cheapest allowed candidate",
    )
    assert result.explain() == "\n".join(
        [
            "decision d-42: ALLOW on llama-3.3-70b-local (on-prem-vllm, local)",
            "  reason: cheapest allowed candidate",
            "  cost: estimated $0.001250, reserved $0.002000 (output capped at 1,500 tokens)",
            "  rules fired:",
            "    - sensitivity:confidential->local-only: 3 candidates removed",
            "  config version: vabc",
        ]
    )


def test_explain_a_throttle_says_when_to_retry() -> None:
    text = RouteResult("d-7", Action.THROTTLE, retry_after_ms=250, reason="tenant bucket").explain()
    assert text.splitlines()[0] == "decision d-7: THROTTLE"
    assert "  retry after: 250 ms" in text
    assert "cost:" not in text
    assert "  rules fired: none" in text


def test_explain_an_approval() -> None:
    text = RouteResult("d-9", Action.APPROVAL_REQUIRED, approval_id="ap-1").explain()
    assert text.splitlines()[0] == "decision d-9: APPROVAL REQUIRED"
    assert "  approval id: ap-1" in text
