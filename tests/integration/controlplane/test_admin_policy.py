"""The Admin API of a real control plane on SQLite and PostgreSQL: policy validation
with line numbers, and approvals decided once, across two replicas of one database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from clients import AdminClient
from clients.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from controlplane.sql_schema import approvals
from faregate.policy import governance_from_json, guardrails_from_json
from tests.integration.processes import ServerProcess, controlplane, wait_for

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "faregate.yaml"
POLICY = """\
guardrails:
  ceilings:
    - {name: summary-cost, capability: summarization, max_cost_per_request: 0.05}
  blocked:
    - {name: no-large-batch, priority: batch, tier: large}
  throttles:
    - {name: support, tenant: acme, requests_per_second: 5, reserve: {batch: 0.5}}
governance:
  approval_ttl: 30m
"""


@pytest.fixture
def cp(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = controlplane(tmp_path, database_url).start()
    try:
        yield process
    finally:
        process.stop()


def with_policy(policy: str) -> str:
    text = EXAMPLE.read_text()
    # Guardrails and governance close the example: replace both, whatever they hold.
    return text[: text.index("\nguardrails:") + 1] + policy


def test_bad_guardrails_are_rejected_whole_with_line_numbers(cp: ServerProcess) -> None:
    text = with_policy(POLICY)
    first_line = text.count("\n", 0, text.index("guardrails:")) + 1
    with AdminClient(cp.address) as admin:
        with pytest.raises(InvalidArgumentError) as rejected:
            admin.apply_config(text, "faregate.yaml")
        assert rejected.value.lines == [
            f"faregate.yaml:{first_line + 6}: guardrails.throttles[0].reserve: background"
            " (0.4, the default) must keep at least the share of batch (0.5): lower classes"
            " are throttled first"
        ]
        assert admin.list_revisions() == []
        applied = admin.apply_config(text.replace("{batch: 0.5}", "{batch: 0.3}"), "f.yaml")
        assert applied.revision == 1
        snapshot = admin.get_snapshot()
    guardrails = guardrails_from_json(snapshot.guardrails)
    assert guardrails.ceilings[0].max_cost_nanos == 50_000_000
    assert guardrails.blocked[0].tier == "large"
    assert governance_from_json(snapshot.governance).approval_ttl_ms == 1_800_000


def test_approvals_are_listed_and_decided_once_through_any_replica(
    tmp_path: Path, database_url: str, cp: ServerProcess
) -> None:
    other = controlplane(tmp_path / "replica", database_url).start()
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                approvals.insert(),
                [
                    {
                        "approval_id": approval_id,
                        "sidecar_id": "sc-1",
                        "service": "svc",
                        "decision_id": "d",
                        "idempotency_key": "",
                        "capability": "summarization",
                        "tenant": "acme",
                        "team": "risk",
                        "model": "claude-sonnet-4",
                        "risk": "high",
                        "estimated_cost_nanos": 300_000_000,
                        "labels": "{}",
                        "state": "pending",
                        "requested_at_ms": requested,
                        "decided_by": "",
                        "reason": "",
                        "expires_at_ms": requested + 3_600_000,
                        "max_uses": 0,
                        "uses": 0,
                        "updated_at_ms": requested,
                    }
                    for approval_id, requested in (("ap-live", 4_000_000_000_000), ("ap-old", 1))
                ],
            )
        with AdminClient(cp.address) as first, AdminClient(other.address) as second:
            listed = first.list_approvals()
            assert [a.approval_id for a in listed] == ["ap-live"]  # ap-old lapsed
            assert listed[0].estimated_cost_nanos == 300_000_000 and listed[0].risk == "high"
            decision = second.decide_approval("ap-live", approve=True, decided_by="ana", max_uses=2)
            assert (decision.state, decision.max_uses, decision.decided_by) == (
                "approved",
                2,
                "ana",
            )
            with pytest.raises(FailedPreconditionError, match="already approved by ana"):
                first.decide_approval("ap-live", approve=False, decided_by="bo", reason="x")
            with pytest.raises(FailedPreconditionError, match="expired"):
                first.decide_approval("ap-old", approve=True, decided_by="bo")
            with pytest.raises(NotFoundError):
                first.decide_approval("ap-none", approve=True, decided_by="bo")
            with pytest.raises(InvalidArgumentError, match="valid_for_ms"):
                first.decide_approval("ap-live", approve=True, decided_by="bo", valid_for_ms=-1)
            every = wait_for(lambda: first.list_approvals(include_decided=True))
            assert [(a.approval_id, a.state) for a in every] == [
                ("ap-live", "approved"),
                ("ap-old", "expired"),
            ]
    finally:
        engine.dispose()
        other.stop()
