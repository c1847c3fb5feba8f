"""Governance (risk x cost band) and the approval lifecycle, on a fake clock.

Bands here: low below 400_000 nanos, medium below 1_000_000, high above. The
`ordered` capability routes to big (10_500_000 for 1,000 in and 500 out): high band.
"""

from __future__ import annotations

import pytest

from faregate.model import Action, Capability, RiskLevel, RoutingPolicy
from faregate.policy import Governance, Guardrails, Throttle
from sidecar.approvals import ApprovalState, ApprovalVerdict
from sidecar.decision import RouteRequest
from sidecar.governance import TIMES
from tests.unit.sidecar.catalog import T0, Engine, make_snapshot, rule_names

GOVERNANCE = Governance(band_limits_nanos=(400_000, 1_000_000), approval_ttl_ms=60_000)
ORDERED = Capability(
    "chat", "", 500, ("big", "small", "tiny", "local", "tagged"), RoutingPolicy("ordered")
)
HOUR = 3_600_000


def engine(guardrails: Guardrails | None = None) -> Engine:
    return Engine(
        make_snapshot(capabilities=(ORDERED,), governance=GOVERNANCE, guardrails=guardrails)
    )


def ask(risk: RiskLevel = RiskLevel.HIGH, **kw: object) -> RouteRequest:
    return RouteRequest(
        "chat",
        tenant="acme",
        team="risk",
        risk=risk,
        input_tokens=1_000,
        labels={"case": "42"},
        **kw,  # type: ignore[arg-type]
    )


def approve(e: Engine, approval_id: str, *, max_uses: int = 1, for_ms: int = HOUR) -> None:
    verdict = ApprovalVerdict(
        approval_id, ApprovalState.APPROVED, e.now + for_ms, max_uses, "alice", "", e.now
    )
    e.runtime.approvals.apply(verdict, e.now)


@pytest.mark.parametrize(
    ("risk", "action", "rule"),
    [
        (RiskLevel.LOW, Action.ALLOW, ""),
        (RiskLevel.MEDIUM, Action.APPROVAL_REQUIRED, f"governance:medium{TIMES}high->approval"),
        (RiskLevel.HIGH, Action.APPROVAL_REQUIRED, f"governance:high{TIMES}high->approval"),
        (RiskLevel.CRITICAL, Action.DENY, f"governance:critical{TIMES}high->deny"),
    ],
)
def test_risk_by_cost_band(risk: RiskLevel, action: Action, rule: str) -> None:
    decision = engine().route(ask(risk))
    assert decision.action is action
    if rule:
        assert rule_names(decision)[-1] == rule
        assert "high cost band" in dict(decision.rules)[rule]
        assert decision.estimated_cost_nanos == 10_500_000
        assert decision.model == ""
    else:
        assert not any(r.startswith("governance:") for r in rule_names(decision))


def test_cheap_route_needs_no_approval_at_high_risk() -> None:
    snapshot = make_snapshot(governance=GOVERNANCE)  # cheapest: tiny, 300_000, low band
    assert Engine(snapshot).route(ask()).action is Action.ALLOW


def test_approval_request_is_queued_without_prompt_text() -> None:
    e = engine()
    decision = e.route(ask(idempotency_key="k1"))
    assert decision.approval_id == "approval-1"
    assert "approval-1" in decision.reason
    (sent,) = e.runtime.approvals.take_outgoing()
    assert (sent.approval_id, sent.capability, sent.tenant, sent.team, sent.model) == (
        "approval-1",
        "chat",
        "acme",
        "risk",
        "big",
    )
    assert sent.estimated_cost_nanos == 10_500_000
    assert sent.risk is RiskLevel.HIGH
    assert dict(sent.labels) == {"case": "42"}
    assert (sent.idempotency_key, sent.decision_id) == ("k1", decision.decision_id)
    assert e.runtime.approvals.take_outgoing() == []


def test_pending_then_approved_then_uses_counted_then_exhausted() -> None:
    e = engine()
    approval_id = e.route(ask()).approval_id
    pending = e.route(ask(approval_id=approval_id))
    assert pending.action is Action.APPROVAL_REQUIRED
    assert pending.approval_id == approval_id
    assert rule_names(pending)[-1] == "approval:pending"
    assert len(e.runtime.approvals.take_outgoing()) == 1  # the retry opened nothing new

    approve(e, approval_id, max_uses=2)
    first = e.route(ask(approval_id=approval_id))
    assert first.action is Action.ALLOW
    assert first.model == "big"
    assert rule_names(first)[-1] == "approval:granted"
    assert dict(first.rules)["approval:granted"] == f"{approval_id} by alice, 2 of 2 uses left"
    second = e.route(ask(approval_id=approval_id))
    assert dict(second.rules)["approval:granted"] == f"{approval_id} by alice, 1 of 2 uses left"

    exhausted = e.route(ask(approval_id=approval_id))
    assert exhausted.action is Action.APPROVAL_REQUIRED
    assert "approval:exhausted" in rule_names(exhausted)
    assert exhausted.approval_id not in ("", approval_id)  # decided afresh: a new request


def test_denied_approval_is_a_deny_with_the_reason() -> None:
    e = engine()
    approval_id = e.route(ask()).approval_id
    verdict = ApprovalVerdict(approval_id, ApprovalState.DENIED, reason="use the summary model")
    e.runtime.approvals.apply(verdict, e.now)
    decision = e.route(ask(approval_id=approval_id))
    assert decision.action is Action.DENY
    assert rule_names(decision)[-1] == "approval:denied"
    assert "use the summary model" in decision.reason


def test_pending_request_expires_after_the_ttl() -> None:
    e = engine()
    approval_id = e.route(ask()).approval_id
    e.now = T0 + GOVERNANCE.approval_ttl_ms - 1
    assert e.route(ask(approval_id=approval_id)).approval_id == approval_id
    e.now = T0 + GOVERNANCE.approval_ttl_ms
    fresh = e.route(ask(approval_id=approval_id))
    assert "approval:expired" in rule_names(fresh)
    assert fresh.approval_id not in ("", approval_id)


def test_approval_expires() -> None:
    e = engine()
    approval_id = e.route(ask()).approval_id
    approve(e, approval_id, max_uses=10, for_ms=1_000)
    assert e.route(ask(approval_id=approval_id)).action is Action.ALLOW
    e.now += 1_000
    decision = e.route(ask(approval_id=approval_id))
    assert decision.action is Action.APPROVAL_REQUIRED
    assert "approval:expired" in rule_names(decision)


def test_approval_without_expiry_or_uses_gets_the_governance_defaults() -> None:
    e = engine()
    approval_id = e.route(ask()).approval_id
    e.runtime.approvals.apply(ApprovalVerdict(approval_id, ApprovalState.APPROVED), e.now)
    assert e.route(ask(approval_id=approval_id)).action is Action.ALLOW
    # default_max_uses is 1
    assert "approval:exhausted" in rule_names(e.route(ask(approval_id=approval_id)))


def test_retry_by_idempotency_key_finds_the_approval() -> None:
    e = engine()
    approval_id = e.route(ask(idempotency_key="k")).approval_id
    again = e.route(ask(idempotency_key="k"))
    assert (again.action, again.approval_id) == (Action.APPROVAL_REQUIRED, approval_id)
    approve(e, approval_id)
    granted = e.route(ask(idempotency_key="k"))
    assert granted.action is Action.ALLOW
    assert "approval:granted" in rule_names(granted)
    # The key is scoped by tenant: another tenant's same key opens its own request.
    other = e.route(RouteRequest("chat", tenant="globex", risk=RiskLevel.HIGH, idempotency_key="k"))
    assert other.approval_id not in ("", approval_id)


def test_approval_for_another_tenant_is_not_honoured() -> None:
    e = engine()
    approval_id = e.route(ask()).approval_id
    approve(e, approval_id)
    decision = e.route(
        RouteRequest("chat", tenant="globex", risk=RiskLevel.HIGH, approval_id=approval_id)
    )
    assert decision.action is Action.APPROVAL_REQUIRED
    assert "approval:mismatch" in rule_names(decision)


def test_unknown_approval_id_is_decided_afresh() -> None:
    decision = engine().route(ask(approval_id="nope"))
    assert rule_names(decision)[-2:] == (
        "approval:unknown",
        f"governance:high{TIMES}high->approval",
    )
    assert decision.approval_id == "approval-1"


def test_verdict_on_another_sidecars_request_is_honoured() -> None:
    e = engine()
    approve(e, "opened-elsewhere")
    assert e.route(ask(approval_id="opened-elsewhere")).action is Action.ALLOW


def test_dry_run_requests_no_approval_and_counts_no_use() -> None:
    e = engine()
    dry = e.route(ask(dry_run=True))
    assert (dry.action, dry.approval_id) == (Action.APPROVAL_REQUIRED, "")
    assert "dry run" in dry.reason
    assert len(e.runtime.approvals) == 0
    assert e.runtime.approvals.take_outgoing() == []

    approval_id = e.route(ask()).approval_id
    approve(e, approval_id)
    for _ in range(3):
        assert e.route(ask(approval_id=approval_id, dry_run=True)).action is Action.ALLOW
    assert e.route(ask(approval_id=approval_id)).action is Action.ALLOW  # the one real use


def test_a_throttled_retry_spends_no_approval_use() -> None:
    e = engine(Guardrails(throttles=(Throttle("one", requests_per_second=1, burst=1),)))
    approval_id = e.route(ask()).approval_id
    approve(e, approval_id)
    assert e.route(ask(risk=RiskLevel.LOW)).action is Action.ALLOW  # drains the bucket
    assert e.route(ask(approval_id=approval_id)).action is Action.THROTTLE
    e.now += 1_000
    assert e.route(ask(approval_id=approval_id)).action is Action.ALLOW


def test_pending_requests_are_resent_after_a_reconnect() -> None:
    e = engine()
    first = e.route(ask()).approval_id
    second = e.route(ask()).approval_id
    assert len(e.runtime.approvals.take_outgoing()) == 2
    approve(e, second)
    e.runtime.approvals.resend_pending(e.now)
    assert [r.approval_id for r in e.runtime.approvals.take_outgoing()] == [first]
    e.runtime.approvals.resend_pending(e.now + GOVERNANCE.approval_ttl_ms)
    assert e.runtime.approvals.take_outgoing() == []  # expired: not worth asking
