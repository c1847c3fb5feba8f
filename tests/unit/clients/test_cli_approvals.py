"""`faregate approvals` and `faregate explain` against fake Admin and Router clients."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import grpc
from click.testing import CliRunner, Result

from clients.admin_results import Approval, ApprovalDecision
from clients.cli import CliContext, cli
from clients.errors import FaregateError, error_for
from clients.router_results import RouteResult, RuleFired
from faregate.model import Action
from tests.unit.clients.test_cli import NOW_MS, FakeAdmin

MINUTE = 60_000
PENDING = Approval(
    approval_id="ap-7",
    decision=ApprovalDecision("ap-7", "pending", expires_at_unix_ms=NOW_MS + 55 * MINUTE),
    capability="analysis",
    tenant="acme",
    team="risk",
    model="big",
    estimated_cost_nanos=165_000_000,
    risk="high",
    sidecar_id="sc-1",
    requested_at_unix_ms=NOW_MS - 5 * MINUTE,
)
DENIED = Approval(
    approval_id="ap-6",
    decision=ApprovalDecision(
        "ap-6", "denied", decided_by="bo", reason="too dear", decided_at_unix_ms=NOW_MS - MINUTE
    ),
    capability="analysis",
    model="big",
    requested_at_unix_ms=NOW_MS - 3 * 60 * MINUTE,
)


class ApprovalsAdmin(FakeAdmin):
    def list_approvals(self, include_decided: bool = False) -> list[Approval]:
        self._record("list_approvals", include_decided)
        return [PENDING, DENIED] if include_decided else [PENDING]

    def decide_approval(
        self,
        approval_id: str,
        *,
        approve: bool,
        decided_by: str,
        reason: str = "",
        valid_for_ms: int = 0,
        max_uses: int = 0,
    ) -> ApprovalDecision:
        self._record("decide_approval", approval_id, approve, reason, valid_for_ms, max_uses)
        assert decided_by  # the OS user
        if approve:
            return ApprovalDecision(
                approval_id,
                "approved",
                expires_at_unix_ms=NOW_MS + (valid_for_ms or 3_600_000),
                max_uses=max_uses or 1,
                decided_by=decided_by,
                decided_at_unix_ms=NOW_MS,
            )
        return ApprovalDecision(approval_id, "denied", decided_by=decided_by, reason=reason)


class FakeRouter:
    def __init__(self, fail: FaregateError | None = None) -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []
        self.closed = False

    def route(self, capability: str, **fields: Any) -> RouteResult:
        self.calls.append({"capability": capability, **fields})
        if self.fail is not None:
            raise self.fail
        return RouteResult(
            decision_id="d-9",
            action=Action.APPROVAL_REQUIRED,
            model="big",
            provider="p1",
            tier="large",
            estimated_cost_nanos=165_000_000,
            max_output_tokens=1000,
            rules=(RuleFired("governance:high-high->approval", "band high ($0.165)"),),
            config_version="vabc",
        )

    def close(self) -> None:
        self.closed = True


def invoke(*args: str, admin: FakeAdmin | None = None, router: FakeRouter | None = None) -> Result:
    def no_admin(target: str) -> FakeAdmin:
        raise AssertionError("explain must not need the control plane")

    context = CliContext(
        admin_factory=(lambda target: admin) if admin else no_admin,  # type: ignore[arg-type,return-value]
        router_factory=lambda target: router,  # type: ignore[arg-type,return-value]
        clock=lambda: NOW_MS / 1000,
    )
    return CliRunner().invoke(cli, list(args), obj=context, env={"COLUMNS": "200"})


def test_list_shows_pending_approvals_with_cost_and_times() -> None:
    admin = ApprovalsAdmin()
    result = invoke("approvals", "list", admin=admin)
    assert result.exit_code == 0, result.output
    assert admin.calls == [("list_approvals", (False,))]
    row = next(line for line in result.output.splitlines() if "ap-7" in line)
    for cell in (
        "pending",
        "analysis",
        "acme/risk",
        "big",
        "$0.165000",
        "high",
        "5m ago",
        "in 55m",
    ):
        assert cell in row, cell
    assert "ap-6" not in result.output
    assert "faregate approvals approve ID" in result.output


def test_list_all_includes_decisions_and_json_keeps_integers() -> None:
    result = invoke("approvals", "list", "--all", admin=ApprovalsAdmin())
    row = next(line for line in result.output.splitlines() if "ap-6" in line)
    assert "denied" in row and "bo, 1m ago: too dear" in row
    result = invoke("-o", "json", "approvals", "list", "--all", admin=ApprovalsAdmin())
    listed = json.loads(result.output)
    assert [a["approval_id"] for a in listed] == ["ap-7", "ap-6"]
    assert listed[0]["estimated_cost_nanos"] == 165_000_000
    assert listed[1]["decided_by"] == "bo" and listed[1]["state"] == "denied"


def test_approve_sends_duration_and_uses() -> None:
    admin = ApprovalsAdmin()
    result = invoke(
        "approvals", "approve", "ap-7", "--for", "1h30m", "--max-uses", "3", admin=admin
    )
    assert result.exit_code == 0, result.output
    assert admin.calls == [("decide_approval", ("ap-7", True, "", 5_400_000, 3))]
    assert "Approved ap-7" in result.output and "3 uses" in result.output


def test_approve_without_options_leaves_the_defaults_to_governance() -> None:
    admin = ApprovalsAdmin()
    result = invoke("-o", "json", "approvals", "approve", "ap-7", admin=admin)
    assert result.exit_code == 0, result.output
    assert admin.calls == [("decide_approval", ("ap-7", True, "", 0, 0))]
    assert json.loads(result.output)["state"] == "approved"


def test_approve_rejects_a_bad_duration_or_uses() -> None:
    for args in (["--for", "soon"], ["--for", "0m"], ["--max-uses", "0"]):
        admin = ApprovalsAdmin()
        result = invoke("approvals", "approve", "ap-7", *args, admin=admin)
        assert result.exit_code == 2, args
        assert admin.calls == []


def test_deny_needs_a_reason() -> None:
    admin = ApprovalsAdmin()
    missing = invoke("approvals", "deny", "ap-7", admin=admin)
    assert missing.exit_code == 2 and "--reason" in missing.output
    blank = invoke("approvals", "deny", "ap-7", "--reason", " ", admin=admin)
    assert blank.exit_code == 2
    assert admin.calls == []
    result = invoke("approvals", "deny", "ap-7", "--reason", "use the summary", admin=admin)
    assert result.exit_code == 0, result.output
    assert admin.calls == [("decide_approval", ("ap-7", False, "use the summary", 0, 0))]
    assert "Denied ap-7 (use the summary)" in result.output


def test_deciding_twice_is_refused_with_the_servers_reason() -> None:
    already = error_for(
        grpc.StatusCode.FAILED_PRECONDITION, "approval ap-7 was already denied by bo at ..."
    )
    result = invoke("approvals", "approve", "ap-7", admin=ApprovalsAdmin(fail=already))
    assert result.exit_code == 1
    assert "already denied by bo" in result.output


def test_explain_prints_the_dry_run_decision_without_the_control_plane() -> None:
    router = FakeRouter()
    result = invoke(
        "explain",
        "analysis",
        "--sidecar",
        "127.0.0.1:7401",
        "--tenant",
        "acme",
        "--risk",
        "high",
        "--input-tokens",
        "50000",
        "--label",
        "ticket=T-1",
        router=router,
    )
    assert result.exit_code == 0, result.output
    (call,) = router.calls
    assert call["dry_run"] is True
    assert call["risk"] == "high" and call["input_tokens"] == 50_000
    assert call["labels"] == {"ticket": "T-1"}
    assert router.closed
    for text in (
        "APPROVAL REQUIRED",
        "big (provider p1, tier large)",
        "$0.165000",
        "1. governance:high-high->approval: band high ($0.165)",
        "vabc",
    ):
        assert text in result.output, text


def test_explain_as_json_and_its_errors() -> None:
    result = invoke("-o", "json", "explain", "analysis", "--sidecar", "s:1", router=FakeRouter())
    data: Mapping[str, Any] = json.loads(result.output)
    assert data["action"] == "approval_required" and data["estimated_cost_nanos"] == 165_000_000
    bad_label = invoke("explain", "a", "--sidecar", "s:1", "--label", "oops", router=FakeRouter())
    assert bad_label.exit_code == 2
    down = FakeRouter(fail=error_for(grpc.StatusCode.UNAVAILABLE, "connection refused"))
    unreachable = invoke("explain", "a", "--sidecar", "s:1", router=down)
    assert unreachable.exit_code == 3 and "cannot reach the sidecar at s:1" in unreachable.output
    unknown = FakeRouter(fail=error_for(grpc.StatusCode.INVALID_ARGUMENT, "capability: unknown"))
    refused = invoke("explain", "a", "--sidecar", "s:1", router=unknown)
    assert refused.exit_code == 1 and "capability: unknown" in refused.output


def test_new_commands_teach_with_an_example() -> None:
    for args in (
        ["approvals"],
        ["approvals", "list"],
        ["approvals", "approve"],
        ["approvals", "deny"],
        ["explain"],
    ):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Example" in result.output and "faregate " in result.output, args
