"""The decision engine through real processes: sensitivity, approvals, throttles,
ceilings, blocked paths and budget pressure, each as an operator meets it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clients import AdminClient, RouterClient
from faregate.model import Action
from tests.integration.processes import (
    ServerProcess,
    controlplane,
    faregate_cli,
    sidecar,
    wait_for,
)

POLICY = Path(__file__).parent / "fixtures" / "policy.yaml"


@pytest.fixture
def cp(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = controlplane(tmp_path, database_url).start()
    try:
        applied = faregate_cli(process.address, "apply", "-f", str(POLICY))
        assert applied.returncode == 0, applied.stdout + applied.stderr
        yield process
    finally:
        process.stop()


@pytest.fixture
def router(tmp_path: Path, cp: ServerProcess) -> Iterator[RouterClient]:
    with AdminClient(cp.address) as admin:
        version = admin.get_snapshot(0).version
    sc = sidecar(tmp_path, cp.address, "analytics").start()
    try:
        with RouterClient(sc.address) as client:

            def on_version() -> bool:
                try:
                    return client.route("tagging", dry_run=True).config_version == version
                except Exception:  # no snapshot yet
                    return False

            wait_for(on_version, what="the policy snapshot")
            client.sidecar_address = sc.address  # type: ignore[attr-defined]
            yield client
    finally:
        sc.stop()


def rules(decision: object) -> list[str]:
    return [fired.rule for fired in decision.rules]  # type: ignore[attr-defined]


def test_high_risk_expensive_request_waits_for_approval_then_runs(
    cp: ServerProcess, router: RouterClient
) -> None:
    # big: 50k input x $3/M + 1k output x $15/M = $0.165, the high cost band.
    request = {"tenant": "acme", "team": "risk", "risk": "high", "input_tokens": 50_000}
    assert router.route("analysis", tenant="acme", input_tokens=50_000).action is Action.ALLOW
    pending = router.route("analysis", **request)
    assert pending.action is Action.APPROVAL_REQUIRED
    assert pending.approval_id
    assert any(rule.startswith("governance:") for rule in rules(pending))

    def listed() -> list[dict[str, object]]:
        out = faregate_cli(cp.address, "-o", "json", "approvals", "list")
        assert out.returncode == 0, out.stderr
        return [a for a in json.loads(out.stdout) if a["approval_id"] == pending.approval_id]

    (entry,) = wait_for(listed, what="the pending approval at the control plane")
    assert entry["model"] == "big"
    assert entry["estimated_cost_nanos"] == 165_000_000

    # Still pending: the retry is answered the same way, with the same id.
    again = router.route("analysis", approval_id=pending.approval_id, **request)
    assert again.action is Action.APPROVAL_REQUIRED
    assert again.approval_id == pending.approval_id

    approved = faregate_cli(
        cp.address, "approvals", "approve", pending.approval_id, "--for", "1h", "--max-uses", "1"
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr

    def retried() -> object:
        decision = router.route("analysis", approval_id=pending.approval_id, **request)
        return decision if decision.action is not Action.APPROVAL_REQUIRED else None

    allowed = wait_for(retried, what="the approval to reach the sidecar")
    assert allowed.action is Action.ALLOW
    assert allowed.model == "big"
    assert any(rule.startswith("approval:granted") for rule in rules(allowed))
    # One use granted, one used: the next retry needs a new approval.
    after = router.route("analysis", approval_id=pending.approval_id, **request)
    assert after.action is Action.APPROVAL_REQUIRED
    assert after.approval_id != pending.approval_id

    decided = json.loads(
        faregate_cli(cp.address, "-o", "json", "approvals", "list", "--all").stdout
    )
    (record,) = [a for a in decided if a["approval_id"] == pending.approval_id]
    assert record["state"] == "approved"
    assert record["decided_by"]


def test_denied_approval_denies_the_retry(cp: ServerProcess, router: RouterClient) -> None:
    request = {
        "tenant": "acme",
        "team": "risk",
        "risk": "high",
        "input_tokens": 50_000,
        "idempotency_key": "report-42",
    }
    pending = router.route("analysis", **request)
    assert pending.action is Action.APPROVAL_REQUIRED
    wait_for(
        lambda: (
            pending.approval_id
            in faregate_cli(cp.address, "-o", "json", "approvals", "list").stdout
        ),
        what="the pending approval",
    )
    denied = faregate_cli(
        cp.address, "approvals", "deny", pending.approval_id, "--reason", "use the summary"
    )
    assert denied.returncode == 0, denied.stdout + denied.stderr

    def retried() -> object:
        # The same idempotency key finds the approval without naming it.
        decision = router.route("analysis", **request)
        return decision if decision.action is Action.DENY else None

    refused = wait_for(retried, what="the denial to reach the sidecar")
    assert any(rule.startswith("approval:denied") for rule in rules(refused))


def test_batch_burst_is_throttled_while_interactive_traffic_passes(
    router: RouterClient,
) -> None:
    batch = [router.route("tagging", tenant="acme", priority="batch") for _ in range(20)]
    throttled = [d for d in batch if d.action is Action.THROTTLE]
    assert throttled, [d.action for d in batch]
    assert all(d.retry_after_ms > 0 for d in throttled)
    assert any(rule.startswith("throttle:tagging-rate") for rule in rules(throttled[0]))
    # Headroom is reserved for the interactive class.
    assert router.route("tagging", tenant="acme", priority="interactive").allowed


def route_past_throttles(router: RouterClient, *args: Any, **kwargs: Any) -> Any:
    """Route, honouring THROTTLE's retry-after (a lease may be on its way)."""
    for _ in range(100):
        decision = router.route(*args, **kwargs)
        if decision.action is not Action.THROTTLE:
            return decision
        time.sleep(decision.retry_after_ms / 1000)
    raise AssertionError(f"still throttled: {decision.reason}")


def test_budget_pressure_downgrades(router: RouterClient) -> None:
    # Each call on big costs its full reservation: 1k input x $3/M + 1k output x $15/M
    # = $0.018. The ops budget is $1.00 with a soft threshold at 50%.
    spent = 0
    for _ in range(60):
        decision = route_past_throttles(
            router, "analysis", tenant="acme", team="ops", input_tokens=1000
        )
        if decision.action is Action.DOWNGRADE:
            break
        assert decision.action is Action.ALLOW and decision.model == "big"
        result = router.report(
            decision.decision_id, input_tokens=1000, output_tokens=1000, wait=True
        )
        assert result is not None and result.cost_nanos == 18_000_000
        spent += result.cost_nanos
    else:
        raise AssertionError("no downgrade after $1.08 of spend")
    assert spent >= 500_000_000, decision.explain()  # not before the soft threshold
    assert decision.model == "mini"
    assert "downgrade:budget-soft" in rules(decision)
    # Another team's requests are not under that budget.
    other = route_past_throttles(router, "analysis", tenant="acme", team="risk", input_tokens=1000)
    assert other.model == "big"


def test_cost_ceiling_downgrades_and_blocked_path_is_removed(router: RouterClient) -> None:
    # big: 190k x $3/M + 1k x $15/M = $0.585, over the $0.50 ceiling.
    over = router.route("analysis", tenant="acme", input_tokens=190_000)
    assert over.action is Action.DOWNGRADE
    assert over.model == "mini"
    assert over.estimated_cost_nanos <= 500_000_000
    assert any(rule.startswith("ceiling:analysis-cost") for rule in rules(over))

    batch = router.route("analysis", tenant="acme", priority="batch", input_tokens=1000)
    assert batch.allowed and batch.model == "mini"
    assert any(rule.startswith("blocked:no-large-models-for-batch") for rule in rules(batch))


def test_confidential_work_routes_itself_to_the_local_model(router: RouterClient) -> None:
    decision = router.route("tagging", tenant="acme", sensitivity="confidential")
    assert decision.model == "local"
    regulated = router.route("analysis", tenant="acme", sensitivity="regulated")
    # The first choice would be big; only the local model may see regulated data.
    assert regulated.model == "local"
    assert regulated.action is Action.DOWNGRADE or regulated.action is Action.ALLOW
    assert any(rule.startswith("sensitivity:regulated") for rule in rules(regulated))


def test_explain_prints_the_decision_without_effects(
    cp: ServerProcess, router: RouterClient
) -> None:
    address = router.sidecar_address  # type: ignore[attr-defined]
    out = faregate_cli(
        cp.address,
        "explain",
        "analysis",
        "--sidecar",
        address,
        "--tenant",
        "acme",
        "--risk",
        "high",
        "--input-tokens",
        "50000",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "approval" in out.stdout.lower()
    assert "governance:" in out.stdout
    assert "big" in out.stdout
    # A dry run raises no approval request.
    listed = json.loads(faregate_cli(cp.address, "-o", "json", "approvals", "list").stdout)
    assert listed == []
