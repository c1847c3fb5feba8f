"""The Admin gRPC service: apply configuration, inspect revisions, sidecars and spend.

`ApplyConfig` validates the whole file and rejects it with every problem, one
`FILE:LINE: path: message` line each, in an INVALID_ARGUMENT status; a dry run
returns the changes and stores nothing; content equal to the current revision
stores nothing and answers `unchanged`. Other bad input is INVALID_ARGUMENT naming
the field.

`ListBudgets` shows every budget of the current configuration in its current period
(`controlplane.budget_status`); `ListLeases` the open leases, or all of them.

`ListApprovals` shows pending approvals (or all, newest first), lapsed ones marked
expired on the way. `DecideApproval` decides once: an unknown id is NOT_FOUND, one
already decided or expired FAILED_PRECONDITION; an approval without `valid_for_ms` or
`max_uses` gets the governance defaults. Each decision pokes the approval feed, so
this replica's sidecars hear it at once and the others' within a poll.

A gRPC service: may import grpc and `faregate.v1`; must not import sqlalchemy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, NoReturn

import grpc

from controlplane.approvals import Verdict, closed_message, governance_of, verdict_problem
from controlplane.budget_status import BURN_WINDOW_MS, budget_status
from controlplane.clock import Clock
from controlplane.compiler import compile_snapshot
from controlplane.config import validate_config
from controlplane.convert import (
    approval_to_pb,
    budget_status_to_pb,
    change_to_pb,
    decision_to_pb,
    lease_to_pb,
    revision_to_pb,
    sidecar_to_pb,
    spend_to_pb,
)
from controlplane.diff import diff_snapshots
from controlplane.metrics import ControlPlaneMetrics
from controlplane.snapshot_source import SnapshotSource
from controlplane.store import SpendGroup, Store
from faregate.convert import snapshot_to_pb
from faregate.model import Snapshot
from faregate.periods import period_key
from faregate.v1 import admin_pb2, admin_pb2_grpc, control_pb2, types_pb2

log = logging.getLogger(__name__)

DEFAULT_REVISIONS_LIMIT = 50
DEFAULT_SPEND_GROUP = SpendGroup.MODEL
# gRPC carries status details in a header; peers reject headers above 8 KiB by
# default, so a very long list of problems is cut short (with a count) below that.
MAX_DETAILS_BYTES = 7000

Context = grpc.aio.ServicerContext[Any, Any]


def problems_details(lines: tuple[str, ...]) -> str:
    """All problem lines, or as many as fit in a status header plus `… N more`."""
    kept: list[str] = []
    size = 0
    for index, line in enumerate(lines):
        size += len(line.encode()) + 1
        if size > MAX_DETAILS_BYTES:
            kept.append(f"... and {len(lines) - index} more problems")
            break
        kept.append(line)
    return "\n".join(kept)


async def _invalid(context: Context, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
    raise AssertionError("abort returns only by raising")


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(
        self,
        *,
        store: Store,
        source: SnapshotSource,
        metrics: ControlPlaneMetrics,
        clock: Clock,
        on_applied: Callable[[], None],
        on_decided: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._source = source
        self._metrics = metrics
        self._clock = clock
        self._on_applied = on_applied
        self._on_decided = on_decided

    async def ApplyConfig(
        self, request: admin_pb2.ApplyConfigRequest, context: Context
    ) -> admin_pb2.ApplyConfigResponse:
        source_name = request.source_name or "config.yaml"
        config, errors = validate_config(request.yaml)
        if errors or config is None:
            self._metrics.configs_rejected.inc()
            lines = tuple(error.render(source_name) for error in errors)
            log.info("rejected %s: %d problem(s)", source_name, len(lines))
            await _invalid(context, problems_details(lines))
        now = self._clock.now_ms()
        draft = compile_snapshot(config, revision=0, created_at_unix_ms=now)
        latest = await asyncio.to_thread(self._store.latest_revision)
        current = (
            await asyncio.to_thread(self._store.get_snapshot, latest.revision)
            if latest is not None
            else None
        )
        changes = [change_to_pb(change) for change in diff_snapshots(current, draft)]
        unchanged = current is not None and current.version == draft.version
        if request.dry_run:
            return admin_pb2.ApplyConfigResponse(
                revision=0,
                snapshot_version=draft.version,
                changes=changes,
                unchanged=unchanged,
                dry_run=True,
            )
        result = await asyncio.to_thread(
            lambda: self._store.append_revision(
                draft,
                yaml_text=request.yaml,
                source_name=source_name,
                author=request.author,
                created_at_unix_ms=now,
            )
        )
        if not result.created:
            return admin_pb2.ApplyConfigResponse(
                revision=0, snapshot_version=draft.version, unchanged=True
            )
        self._metrics.revisions_applied.inc()
        self._on_applied()
        log.info(
            "revision %d (%s) applied from %s by %s",
            result.revision.revision,
            draft.version,
            source_name,
            request.author or "unknown",
        )
        return admin_pb2.ApplyConfigResponse(
            revision=result.revision.revision, snapshot_version=draft.version, changes=changes
        )

    async def ListRevisions(
        self, request: admin_pb2.ListRevisionsRequest, context: Context
    ) -> admin_pb2.ListRevisionsResponse:
        if request.limit < 0:
            await _invalid(context, "limit: must not be negative")
        limit = request.limit or DEFAULT_REVISIONS_LIMIT
        revisions = await asyncio.to_thread(self._store.list_revisions, limit)
        return admin_pb2.ListRevisionsResponse(revisions=[revision_to_pb(r) for r in revisions])

    async def GetSnapshot(
        self, request: admin_pb2.GetSnapshotRequest, context: Context
    ) -> types_pb2.Snapshot:
        if request.revision < 0:
            await _invalid(context, "revision: must not be negative")
        revision = request.revision
        if revision == 0:
            latest = await asyncio.to_thread(self._store.latest_revision)
            if latest is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no configuration applied yet")
                raise AssertionError("unreachable")
            revision = latest.revision
        snapshot = await asyncio.to_thread(self._store.get_snapshot, revision)
        if snapshot is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"revision {revision} does not exist")
            raise AssertionError("unreachable")
        return snapshot_to_pb(snapshot)

    async def ListSidecars(
        self, request: admin_pb2.ListSidecarsRequest, context: Context
    ) -> admin_pb2.ListSidecarsResponse:
        sidecars = await asyncio.to_thread(self._store.list_sidecars)
        current = self._source.current()
        if current is None:
            latest = await asyncio.to_thread(self._store.latest_revision)
            current_version = latest.snapshot_version if latest is not None else ""
        else:
            current_version = current.version
        return admin_pb2.ListSidecarsResponse(
            sidecars=[sidecar_to_pb(s) for s in sidecars], current_version=current_version
        )

    async def GetSpend(
        self, request: admin_pb2.SpendRequest, context: Context
    ) -> admin_pb2.SpendResponse:
        if request.window_ms < 0:
            await _invalid(context, "window_ms: must not be negative (0 means all time)")
        group_by = DEFAULT_SPEND_GROUP
        if request.group_by:
            try:
                group_by = SpendGroup(request.group_by)
            except ValueError:
                allowed = ", ".join(group.value for group in SpendGroup)
                await _invalid(context, f"group_by: {request.group_by!r} is not one of {allowed}")
        since = self._clock.now_ms() - request.window_ms if request.window_ms else None
        rows = await asyncio.to_thread(self._store.spend, group_by, since)
        return spend_to_pb(rows, request.window_ms, group_by.value)

    async def ListApprovals(
        self, request: admin_pb2.ListApprovalsRequest, context: Context
    ) -> admin_pb2.ListApprovalsResponse:
        listed = await asyncio.to_thread(
            lambda: self._store.list_approvals(
                include_decided=request.include_decided, now_ms=self._clock.now_ms()
            )
        )
        return admin_pb2.ListApprovalsResponse(approvals=[approval_to_pb(a) for a in listed])

    async def ListBudgets(
        self, request: admin_pb2.ListBudgetsRequest, context: Context
    ) -> admin_pb2.ListBudgetsResponse:
        snapshot = await self._current_snapshot()
        budgets = snapshot.budgets if snapshot is not None else ()
        now = self._clock.now_ms()
        keys = [(b.name, period_key(b.period, b.time_zone, now)) for b in budgets]
        totals = await asyncio.to_thread(self._store.budget_totals, keys)
        burn = await asyncio.to_thread(
            self._store.budget_burn, [b.name for b in budgets], now - BURN_WINDOW_MS
        )
        statuses = [
            budget_status(budget, total, burn.get(budget.name, 0), now)
            for budget, total in zip(budgets, totals, strict=True)
        ]
        for status in statuses:
            self._metrics.budget_remaining_nanos.labels(budget=status.name).set(
                status.remaining_nanos
            )
        return admin_pb2.ListBudgetsResponse(budgets=[budget_status_to_pb(s) for s in statuses])

    async def ListLeases(
        self, request: admin_pb2.ListLeasesRequest, context: Context
    ) -> admin_pb2.ListLeasesResponse:
        listed = await asyncio.to_thread(
            lambda: self._store.list_leases(include_closed=request.include_closed)
        )
        return admin_pb2.ListLeasesResponse(leases=[lease_to_pb(lease) for lease in listed])

    async def DecideApproval(
        self, request: admin_pb2.DecideApprovalRequest, context: Context
    ) -> control_pb2.ApprovalDecision:
        if not request.approval_id:
            await _invalid(context, "approval_id: required")
        problem = verdict_problem(request.valid_for_ms, request.max_uses, request.approve)
        if problem is not None:
            await _invalid(context, problem)
        governance = governance_of(await self._current_snapshot())
        verdict = Verdict(
            approve=request.approve,
            decided_by=request.decided_by or "unknown",
            reason=request.reason,
            valid_for_ms=(request.valid_for_ms or governance.default_grant_ms)
            if request.approve
            else 0,
            max_uses=(request.max_uses or governance.default_max_uses) if request.approve else 0,
        )
        now = self._clock.now_ms()
        outcome = await asyncio.to_thread(
            self._store.decide_approval, request.approval_id, verdict, now
        )
        if outcome is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"approval {request.approval_id} does not exist"
            )
            raise AssertionError("unreachable")
        approval, taken = outcome
        if not taken:
            self._on_decided()  # it may have expired just now: sidecars hear that too
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, closed_message(approval))
            raise AssertionError("unreachable")
        self._metrics.approvals_decided.labels(state=approval.state.value).inc()
        self._on_decided()
        log.info(
            "approval %s %s by %s%s",
            approval.approval_id,
            approval.state.value,
            approval.decided_by,
            f": {approval.reason}" if approval.reason else "",
        )
        return decision_to_pb(approval)

    async def _current_snapshot(self) -> Snapshot | None:
        current = self._source.current()
        if current is not None:
            return current
        latest = await asyncio.to_thread(self._store.latest_revision)
        if latest is None:
            return None
        return await asyncio.to_thread(self._store.get_snapshot, latest.revision)
