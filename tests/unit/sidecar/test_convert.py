"""Wire mapping of the sidecar's messages: enums, optional fields, codecs."""

from __future__ import annotations

import pytest

from faregate.convert import SnapshotDecodeError
from faregate.model import Action, Complexity, Outcome, Priority, RiskLevel, Sensitivity
from faregate.v1 import control_pb2, router_pb2, types_pb2
from sidecar.approvals import ApprovalRequest, ApprovalState, ApprovalVerdict
from sidecar.convert import (
    SnapshotFileCodec,
    approval_request_to_pb,
    approval_verdict_from_pb,
    decision_to_pb,
    report_response_to_pb,
    route_request_from_pb,
    usage_batch_to_pb,
    usage_reports_from_pb,
)
from sidecar.engine import Decision, RequestError, RuleFired
from sidecar.usage import MAX_TOKENS, ReportResult, UsageBatch, validate_reports
from tests.unit.sidecar.catalog import make_snapshot, record


def test_route_request_fields_and_defaults() -> None:
    request = route_request_from_pb(
        router_pb2.RouteRequest(
            capability="chat",
            tenant="acme",
            team="risk",
            sensitivity=types_pb2.SENSITIVITY_CONFIDENTIAL,
            risk=types_pb2.RISK_LEVEL_HIGH,
            priority=types_pb2.PRIORITY_BATCH,
            complexity=types_pb2.COMPLEXITY_REASONING,
            input_tokens=10,
            max_output_tokens=20,
            labels={"k": "v"},
            idempotency_key="idem",
            approval_id="ap",
            required_compliance_tags=["soc2"],
            trace_id="t",
        )
    )
    assert request.sensitivity is Sensitivity.CONFIDENTIAL
    assert request.risk is RiskLevel.HIGH
    assert request.priority is Priority.BATCH
    assert request.complexity is Complexity.REASONING
    assert request.complexity_score is None
    assert (request.input_tokens, request.max_output_tokens) == (10, 20)
    assert dict(request.labels) == {"k": "v"}
    assert request.required_compliance_tags == ("soc2",)
    assert (request.idempotency_key, request.approval_id, request.trace_id) == (
        "idem",
        "ap",
        "t",
    )


def test_unspecified_enums_take_the_documented_defaults() -> None:
    request = route_request_from_pb(router_pb2.RouteRequest(capability="chat"))
    assert request.sensitivity is Sensitivity.INTERNAL
    assert request.risk is RiskLevel.LOW
    assert request.priority is Priority.INTERACTIVE
    assert request.complexity is Complexity.UNSPECIFIED


def test_complexity_score_zero_is_distinct_from_unset() -> None:
    request = route_request_from_pb(
        router_pb2.RouteRequest(capability="chat", complexity_score=0.0)
    )
    assert request.complexity_score == 0.0


@pytest.mark.parametrize("field", ["sensitivity", "risk", "priority", "complexity"])
def test_out_of_range_enum_names_the_field(field: str) -> None:
    message = router_pb2.RouteRequest(capability="chat")
    setattr(message, field, 42)  # proto3 enums are open: the number arrives as is
    with pytest.raises(RequestError) as caught:
        route_request_from_pb(message)
    assert caught.value.field == field


def test_report_with_out_of_range_outcome_names_the_report() -> None:
    message = router_pb2.ReportRequest(
        reports=[
            router_pb2.UsageReport(decision_id="a"),
            router_pb2.UsageReport(decision_id="b", outcome=42),  # type: ignore[arg-type]
        ]
    )
    with pytest.raises(RequestError) as caught:
        usage_reports_from_pb(message)
    assert caught.value.field == "reports[1].outcome"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"output_tokens": 2**62}, "reports[1].output_tokens"),
        ({"input_tokens": MAX_TOKENS + 1}, "reports[1].input_tokens"),
        ({"business_value_nanos": -1}, "reports[1].business_value_nanos"),
    ],
)
def test_wire_reports_out_of_range_are_refused_naming_the_field(
    fields: dict[str, int], field: str
) -> None:
    message = router_pb2.ReportRequest(
        reports=[
            router_pb2.UsageReport(decision_id="a", output_tokens=MAX_TOKENS),
            router_pb2.UsageReport(decision_id="b", **fields),
        ]
    )
    reports = usage_reports_from_pb(message)
    with pytest.raises(RequestError) as caught:
        validate_reports(reports)
    assert caught.value.field == field


def test_usage_reports_from_pb() -> None:
    (report,) = usage_reports_from_pb(
        router_pb2.ReportRequest(
            reports=[
                router_pb2.UsageReport(
                    decision_id="a",
                    input_tokens=3,
                    cached_input_tokens=2,
                    output_tokens=1,
                    latency_ms=9,
                    outcome=types_pb2.OUTCOME_TIMEOUT,
                    business_value_nanos=4,
                    outcome_label="x",
                    labels={"k": "v"},
                    model="m",
                )
            ]
        )
    )
    assert (report.decision_id, report.input_tokens, report.cached_input_tokens) == ("a", 3, 2)
    assert report.outcome is Outcome.TIMEOUT
    assert (report.model, dict(report.labels)) == ("m", {"k": "v"})


def test_decision_to_pb() -> None:
    message = decision_to_pb(
        Decision(
            decision_id="d",
            action=Action.DENY,
            config_version="v1",
            max_output_tokens=5,
            rules=(RuleFired("context-window:too-small", "removed x"),),
            reason="nothing fits",
        )
    )
    assert message.action == types_pb2.ACTION_DENY
    assert [(r.rule, r.detail) for r in message.rules] == [
        ("context-window:too-small", "removed x")
    ]
    assert (message.decision_id, message.config_version, message.reason) == (
        "d",
        "v1",
        "nothing fits",
    )


def test_report_response_to_pb() -> None:
    response = report_response_to_pb(
        [ReportResult("a", True, 10), ReportResult("b", False, error="unknown")]
    )
    assert [(r.decision_id, r.accepted, r.cost_nanos, r.error) for r in response.results] == [
        ("a", True, 10, ""),
        ("b", False, 0, "unknown"),
    ]


def test_usage_batch_to_pb() -> None:
    message = usage_batch_to_pb(UsageBatch("inc", 3, (record(1), record(2))))
    assert (message.incarnation, message.seq) == ("inc", 3)
    assert [r.decision_id for r in message.records] == ["d-1", "d-2"]


def test_snapshot_file_codec_round_trip() -> None:
    codec = SnapshotFileCodec()
    snapshot = make_snapshot()
    assert codec.decode(codec.encode(snapshot)) == snapshot


def test_snapshot_file_codec_refuses_garbage() -> None:
    with pytest.raises(SnapshotDecodeError):
        SnapshotFileCodec().decode(b"\xff\xff\xff")


def test_dry_run_is_read() -> None:
    request = route_request_from_pb(router_pb2.RouteRequest(capability="chat", dry_run=True))
    assert request.dry_run
    assert not route_request_from_pb(router_pb2.RouteRequest(capability="chat")).dry_run


def test_approval_request_to_pb_and_verdict_from_pb() -> None:
    request = ApprovalRequest(
        "ap-1", "chat", "acme", "risk", "big", 5, RiskLevel.CRITICAL, {"k": "v"}, "key", "d-1"
    )
    message = approval_request_to_pb(request)
    assert message.risk == types_pb2.RISK_LEVEL_CRITICAL
    assert (message.approval_id, message.idempotency_key, message.decision_id) == (
        "ap-1",
        "key",
        "d-1",
    )
    assert dict(message.labels) == {"k": "v"}
    verdict = approval_verdict_from_pb(
        control_pb2.ApprovalDecision(
            approval_id="ap-1",
            state=control_pb2.APPROVAL_STATE_DENIED,
            reason="no",
            decided_by="bob",
        )
    )
    assert verdict == ApprovalVerdict("ap-1", ApprovalState.DENIED, decided_by="bob", reason="no")
    unknown = control_pb2.ApprovalDecision(approval_id="ap-1", state=99)
    assert approval_verdict_from_pb(unknown) is None
    assert approval_verdict_from_pb(control_pb2.ApprovalDecision(state=2)) is None
