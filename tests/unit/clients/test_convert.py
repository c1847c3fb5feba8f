"""clients.convert: requests built from typed arguments, typed results read from protobuf."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from clients import convert
from clients.errors import (
    FaregateError,
    InvalidArgumentError,
    UnavailableError,
    error_for,
    is_transient,
)
from clients.router_results import RuleFired
from faregate.model import Action, Sensitivity
from faregate.v1 import admin_pb2, router_pb2, types_pb2

# Every keyword route_request takes; tests override one at a time.
ROUTE_DEFAULTS: dict[str, Any] = dict(
    tenant="acme",
    team="risk",
    sensitivity="internal",
    risk="low",
    priority="interactive",
    complexity=None,
    complexity_score=None,
    input_tokens=1200,
    max_output_tokens=0,
    labels=None,
    idempotency_key="",
    approval_id="",
    required_compliance_tags=(),
    trace_id="",
)


def decision(**fields: object) -> router_pb2.RouteDecision:
    message = router_pb2.RouteDecision(
        decision_id="d-1",
        action=types_pb2.ACTION_DOWNGRADE,
        model="gpt-4o-mini",
        provider="openai",
        tier="small",
        estimated_cost_nanos=540_000,
        reserved_cost_nanos=900_000,
        max_output_tokens=600,
        rules=[types_pb2.RuleFired(rule="budget:risk-monthly", detail="soft threshold 80%")],
        config_version="v0123456789abcdef",
        reason="budget pressure: downgraded from claude-3.5-haiku",
    )
    for name, value in fields.items():
        setattr(message, name, value)
    return message


def test_route_result_reads_every_field() -> None:
    result = convert.route_result(decision())
    assert result.decision_id == "d-1"
    assert result.action is Action.DOWNGRADE
    assert (result.model, result.provider, result.tier) == ("gpt-4o-mini", "openai", "small")
    assert (result.estimated_cost_nanos, result.reserved_cost_nanos) == (540_000, 900_000)
    assert result.max_output_tokens == 600
    assert result.rules == (RuleFired("budget:risk-monthly", "soft threshold 80%"),)
    assert result.config_version == "v0123456789abcdef"
    assert result.allowed


@pytest.mark.parametrize(
    ("action", "allowed"),
    [
        (types_pb2.ACTION_ALLOW, True),
        (types_pb2.ACTION_DOWNGRADE, True),
        (types_pb2.ACTION_THROTTLE, False),
        (types_pb2.ACTION_APPROVAL_REQUIRED, False),
        (types_pb2.ACTION_DENY, False),
    ],
)
def test_allowed_only_for_allow_and_downgrade(action: int, allowed: bool) -> None:
    assert convert.route_result(decision(action=action)).allowed is allowed


def test_a_decision_without_action_is_an_error_not_a_guess() -> None:
    with pytest.raises(FaregateError, match="no action"):
        convert.route_result(decision(action=types_pb2.ACTION_UNSPECIFIED))


def test_route_request_maps_enums_and_keeps_score_unset_unless_given() -> None:
    request = convert.route_request(
        "translation", **{**ROUTE_DEFAULTS, "sensitivity": Sensitivity.CONFIDENTIAL}
    )
    assert request.sensitivity == types_pb2.SENSITIVITY_CONFIDENTIAL
    assert request.risk == types_pb2.RISK_LEVEL_LOW
    assert request.priority == types_pb2.PRIORITY_INTERACTIVE
    assert request.complexity == types_pb2.COMPLEXITY_UNSPECIFIED
    assert not request.HasField("complexity_score")
    scored = convert.route_request("forecasting", **{**ROUTE_DEFAULTS, "complexity_score": 0.0})
    assert scored.HasField("complexity_score")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sensitivity", "secret", r"sensitivity: 'secret' is not one of 'public'"),
        ("risk", "extreme", r"risk: 'extreme'"),
        ("complexity_score", 1.5, r"complexity_score: must be in \[0, 1\]"),
        ("input_tokens", -1, r"input_tokens: must not be negative"),
    ],
)
def test_route_request_names_the_bad_field(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as raised:
        convert.route_request("summarization", **{**ROUTE_DEFAULTS, field: value})
    assert raised.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(raised.value, ValueError)


def test_usage_report_rejects_more_cached_than_prompt() -> None:
    with pytest.raises(InvalidArgumentError, match="cached_input_tokens"):
        convert.usage_report(
            "d-1",
            input_tokens=10,
            output_tokens=1,
            cached_input_tokens=11,
            latency_ms=0,
            outcome="success",
            business_value_nanos=0,
            outcome_label="",
            labels=None,
            model="",
        )


def test_report_results_follow_the_sent_order_by_decision_id() -> None:
    sent = [router_pb2.UsageReport(decision_id=d) for d in ("a", "b", "c")]
    response = router_pb2.ReportResponse(
        results=[
            router_pb2.ReportResult(decision_id="c", accepted=False, error="unknown decision"),
            router_pb2.ReportResult(decision_id="a", accepted=True, cost_nanos=7),
        ]
    )
    a, b, c = convert.report_results(response, sent)
    assert (a.decision_id, a.accepted, a.cost_nanos) == ("a", True, 7)
    assert (b.decision_id, b.accepted, b.error) == ("b", False, "no result from sidecar")
    assert (c.accepted, c.error) == (False, "unknown decision")


def test_spend_and_sidecars_conversion() -> None:
    report = convert.spend(
        admin_pb2.SpendResponse(
            rows=[
                admin_pb2.SpendRow(
                    key="model-a",
                    cost_nanos=5,
                    requests=2,
                    input_tokens=10,
                    cached_input_tokens=4,
                    output_tokens=3,
                )
            ],
            total_cost_nanos=5,
            total_requests=2,
            window_ms=60_000,
            group_by="model",
        )
    )
    assert report.rows[0].tokens == 13
    assert (report.total_cost_nanos, report.window_ms, report.group_by) == (5, 60_000, "model")
    listing = convert.sidecars(
        admin_pb2.ListSidecarsResponse(
            sidecars=[admin_pb2.SidecarStatus(sidecar_id="s1", service="svc", connected=True)],
            current_version="v1",
        )
    )
    assert listing.current_version == "v1"
    assert listing.sidecars[0].connected


def test_errors_by_code() -> None:
    error = error_for(grpc.StatusCode.UNAVAILABLE, "connection refused", "unix:///x.sock")
    assert isinstance(error, UnavailableError)
    assert is_transient(error)
    assert str(error) == "UNAVAILABLE: connection refused"
    invalid = error_for(grpc.StatusCode.INVALID_ARGUMENT, "a.yaml:3: models[0].name: required\n")
    assert not is_transient(invalid)
    assert invalid.lines == ["a.yaml:3: models[0].name: required"]
    assert type(error_for(grpc.StatusCode.INTERNAL, "boom")) is FaregateError


def test_a_dry_run_is_marked_on_the_request() -> None:
    fields = {
        "tenant": "",
        "team": "",
        "sensitivity": "internal",
        "risk": "low",
        "priority": "interactive",
        "complexity": None,
        "complexity_score": None,
        "input_tokens": 0,
        "max_output_tokens": 0,
        "labels": None,
        "idempotency_key": "",
        "approval_id": "",
        "required_compliance_tags": (),
        "trace_id": "",
    }
    assert convert.route_request("chat", **fields, dry_run=True).dry_run  # type: ignore[arg-type]
    assert not convert.route_request("chat", **fields).dry_run  # type: ignore[arg-type]
