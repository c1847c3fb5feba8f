"""The operators' client of the control plane's Admin API: `AdminClient`.

Typed in, typed out: each method returns the dataclasses of `clients.admin_results`
(or a `faregate.model.Snapshot`) and raises `FaregateError` subclasses, never raw gRPC
errors. Must not import the servers (`sidecar`, `controlplane`).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeVar

import grpc

from clients import convert
from clients.admin_results import (
    ApplyResult,
    Approval,
    ApprovalDecision,
    BudgetStatus,
    LeaseInfo,
    RevisionInfo,
    SidecarList,
    SpendReport,
)
from clients.errors import FaregateError, from_rpc_error
from faregate.convert import SnapshotDecodeError, snapshot_from_pb
from faregate.model import Snapshot
from faregate.v1 import admin_pb2, admin_pb2_grpc

ADMIN_TIMEOUT = 10.0  # seconds; validating and compiling a large config takes a moment

Answer = TypeVar("Answer")


class AdminClient:
    """Target: the control plane's `host:port`, e.g. `127.0.0.1:7400`."""

    def __init__(self, target: str, *, timeout: float = ADMIN_TIMEOUT) -> None:
        self.target = target
        self._timeout = timeout
        self._channel = grpc.insecure_channel(target)
        self._stub = admin_pb2_grpc.AdminStub(self._channel)

    def _call(self, rpc: Callable[[], Answer]) -> Answer:
        try:
            return rpc()
        except grpc.RpcError as error:
            raise from_rpc_error(error, self.target) from None

    def apply_config(
        self, yaml_text: str, source_name: str = "", *, dry_run: bool = False, author: str = ""
    ) -> ApplyResult:
        """Validate and store a whole configuration; INVALID_ARGUMENT lists every problem."""
        request = admin_pb2.ApplyConfigRequest(
            yaml=yaml_text, source_name=source_name, dry_run=dry_run, author=author
        )
        response = self._call(lambda: self._stub.ApplyConfig(request, timeout=self._timeout))
        return convert.apply_result(response)

    def list_revisions(self, limit: int = 0) -> list[RevisionInfo]:
        request = admin_pb2.ListRevisionsRequest(limit=limit)
        response = self._call(lambda: self._stub.ListRevisions(request, timeout=self._timeout))
        return convert.revisions(response)

    def get_snapshot(self, revision: int = 0) -> Snapshot:
        """The compiled snapshot of a revision; 0 means the current one."""
        request = admin_pb2.GetSnapshotRequest(revision=revision)
        message = self._call(lambda: self._stub.GetSnapshot(request, timeout=self._timeout))
        try:
            return snapshot_from_pb(message)
        except SnapshotDecodeError as error:
            raise FaregateError(f"control plane sent an invalid snapshot: {error}") from None

    def list_sidecars(self) -> SidecarList:
        request = admin_pb2.ListSidecarsRequest()
        response = self._call(lambda: self._stub.ListSidecars(request, timeout=self._timeout))
        return convert.sidecars(response)

    def spend(self, window_ms: int = 0, group_by: str = "capability") -> SpendReport:
        """Ledger totals over the last `window_ms` (0: all time), grouped by one dimension."""
        request = admin_pb2.SpendRequest(window_ms=window_ms, group_by=group_by)
        response = self._call(lambda: self._stub.GetSpend(request, timeout=self._timeout))
        return convert.spend(response)

    def list_budgets(self) -> list[BudgetStatus]:
        """Every configured budget in its current period: limit, committed, outstanding,
        remaining, burn rate and projected exhaustion."""
        request = admin_pb2.ListBudgetsRequest()
        response = self._call(lambda: self._stub.ListBudgets(request, timeout=self._timeout))
        return convert.budgets(response)

    def list_leases(self, include_closed: bool = False) -> list[LeaseInfo]:
        """Open budget leases, or every lease (closed, forfeited, expired) with
        `include_closed`."""
        request = admin_pb2.ListLeasesRequest(include_closed=include_closed)
        response = self._call(lambda: self._stub.ListLeases(request, timeout=self._timeout))
        return convert.leases(response)

    def list_approvals(self, include_decided: bool = False) -> list[Approval]:
        """Pending approvals, or all of them (newest first) with `include_decided`."""
        request = admin_pb2.ListApprovalsRequest(include_decided=include_decided)
        response = self._call(lambda: self._stub.ListApprovals(request, timeout=self._timeout))
        return convert.approvals(response)

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
        """Approve or deny once; 0 for `valid_for_ms`/`max_uses` means the governance
        default. A decided or expired approval raises `FailedPreconditionError`, an
        unknown one `NotFoundError`."""
        request = admin_pb2.DecideApprovalRequest(
            approval_id=approval_id,
            approve=approve,
            valid_for_ms=valid_for_ms,
            max_uses=max_uses,
            reason=reason,
            decided_by=decided_by,
        )
        message = self._call(lambda: self._stub.DecideApproval(request, timeout=self._timeout))
        return convert.approval_decision(message)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
