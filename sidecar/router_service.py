"""The Router gRPC service (Route, Report) that services call on their sidecar.

A thin edge: convert the request, call the `Decider` or the `UsageRecorder`,
convert the answer, count it. Report answers only once the usage it settled is
durable in the journal (`durable`, the group commit); if the journal cannot be
written, Report is UNAVAILABLE: what it settled stays buffered (not durable, not
acknowledged) and a retry answers once it is on disk, as a duplicate carrying the
first cost, so nothing is counted twice. Invalid input (including token counts
past `faregate.pricing.MAX_TOKENS`) is INVALID_ARGUMENT naming the field, before anything is
settled; Route before any snapshot is known is UNAVAILABLE. Decisions themselves
are made in `engine`; nothing here decides anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

import grpc

from faregate.v1 import router_pb2, router_pb2_grpc
from sidecar.convert import (
    decision_to_pb,
    report_response_to_pb,
    route_request_from_pb,
    usage_reports_from_pb,
)
from sidecar.decider import Decider, NoSnapshotError
from sidecar.engine import RequestError
from sidecar.journal import JournalUnavailable
from sidecar.metrics import SidecarMetrics
from sidecar.usage import UsageRecorder

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[object, object]


async def _invalid(context: Context, error: RequestError) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))


class RouterService(router_pb2_grpc.RouterServicer):
    def __init__(
        self,
        decider: Decider,
        recorder: UsageRecorder,
        metrics: SidecarMetrics,
        durable: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._decider = decider
        self._recorder = recorder
        self._metrics = metrics
        self._durable = durable

    async def Route(
        self, request: router_pb2.RouteRequest, context: Context
    ) -> router_pb2.RouteDecision:
        started = time.perf_counter()
        try:
            route_request = route_request_from_pb(request)
            decision = self._decider.route(route_request)
        except RequestError as exc:
            await _invalid(context, exc)
        except NoSnapshotError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        elapsed = time.perf_counter() - started
        self._metrics.decided(request.capability, decision, elapsed, dry_run=request.dry_run)
        return decision_to_pb(decision)

    async def Report(
        self, request: router_pb2.ReportRequest, context: Context
    ) -> router_pb2.ReportResponse:
        try:
            results = self._recorder.report(usage_reports_from_pb(request))
        except RequestError as exc:
            await _invalid(context, exc)
        if self._durable is not None:
            try:
                await self._durable()
            except JournalUnavailable as exc:
                log.error("Report not acknowledged: %s", exc)
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"usage could not be made durable, retry the Report: {exc}",
                )
        for result in results:
            self._metrics.reported(result)
            if not result.accepted:
                log.info("report for %s rejected: %s", result.decision_id, result.error)
        return report_response_to_pb(results)
