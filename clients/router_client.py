"""The service-side client of a sidecar's Router API: `RouterClient` and `AsyncRouterClient`.

`route()` is one blocking call (the sidecar answers from local state in well under a
millisecond); `report()` is queued and shipped in batches in the background (see
`clients.batching`) unless the caller asks to `wait` for the result. Both clients map
values through `clients.convert` and errors through `clients.errors`, so the two runtimes
share everything but the transport. Must not import the servers (`sidecar`, `controlplane`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self

import grpc
import grpc.aio

from clients import convert
from clients.batching import AsyncReportBatcher, BatchPolicy, ReportBatcher
from clients.errors import from_rpc_error
from clients.router_results import ReportResult, RouteResult
from faregate.model import Complexity, Outcome, Priority, RiskLevel, Sensitivity
from faregate.v1 import router_pb2, router_pb2_grpc

ROUTE_TIMEOUT = 2.0  # seconds; a sidecar answers in well under a millisecond
REPORT_TIMEOUT = 5.0  # seconds per batch attempt; batches are retried
CLOSE_TIMEOUT = 5.0  # seconds to ship queued reports on close


def _decision_of(report: router_pb2.UsageReport) -> str:
    return f"decision {report.decision_id}"


class _SyncSender:
    """Sends one batch. Holds no reference to the client, so the client can be collected."""

    def __init__(self, stub: router_pb2_grpc.RouterStub, target: str) -> None:
        self._stub = stub
        self._target = target

    def __call__(self, reports: Sequence[router_pb2.UsageReport]) -> list[ReportResult]:
        try:
            response = self._stub.Report(convert.report_request(reports), timeout=REPORT_TIMEOUT)
        except grpc.RpcError as error:
            raise from_rpc_error(error, self._target) from None
        return convert.report_results(response, reports)


def _shutdown(
    batcher: ReportBatcher[router_pb2.UsageReport, ReportResult], channel: grpc.Channel
) -> None:
    batcher.close(CLOSE_TIMEOUT)
    channel.close()


class RouterClient:
    """Talks to the local sidecar. Target: `unix:///path/to.sock` or `host:port`.

    Usage reports are flushed on `close()`, on leaving a `with` block, when the client
    is garbage collected and at interpreter exit.
    """

    def __init__(self, target: str, *, batch_policy: BatchPolicy | None = None) -> None:
        self.target = target
        self._channel = grpc.insecure_channel(target)
        self._stub = router_pb2_grpc.RouterStub(self._channel)
        self._batcher: ReportBatcher[router_pb2.UsageReport, ReportResult] = ReportBatcher(
            _SyncSender(self._stub, target), batch_policy, describe=_decision_of
        )
        # A finalizer (not a bound atexit hook) so that the exit-time flush holds the
        # client only weakly; it also runs if the client is dropped without close().
        self._finalizer = weakref.finalize(self, _shutdown, self._batcher, self._channel)

    def route(
        self,
        capability: str,
        *,
        tenant: str = "",
        team: str = "",
        sensitivity: Sensitivity | str = Sensitivity.INTERNAL,
        risk: RiskLevel | str = RiskLevel.LOW,
        priority: Priority | str = Priority.INTERACTIVE,
        complexity: Complexity | str | None = None,
        complexity_score: float | None = None,
        input_tokens: int = 0,
        max_output_tokens: int = 0,
        labels: Mapping[str, str] | None = None,
        idempotency_key: str = "",
        approval_id: str = "",
        required_compliance_tags: Iterable[str] = (),
        trace_id: str = "",
        dry_run: bool = False,
        timeout: float = ROUTE_TIMEOUT,
    ) -> RouteResult:
        """Ask which model may serve this request; raises FaregateError on a gRPC error.

        With `dry_run`, the sidecar decides as it would but changes nothing: no budget
        reserved, no throttle tokens taken, no approval requested (`faregate explain`).
        """
        request = convert.route_request(
            capability,
            tenant=tenant,
            team=team,
            sensitivity=sensitivity,
            risk=risk,
            priority=priority,
            complexity=complexity,
            complexity_score=complexity_score,
            input_tokens=input_tokens,
            max_output_tokens=max_output_tokens,
            labels=labels,
            idempotency_key=idempotency_key,
            approval_id=approval_id,
            required_compliance_tags=required_compliance_tags,
            trace_id=trace_id,
            dry_run=dry_run,
        )
        try:
            decision = self._stub.Route(request, timeout=timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error, self.target) from None
        return convert.route_result(decision)

    def report(
        self,
        decision_id: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        latency_ms: int = 0,
        outcome: Outcome | str = Outcome.SUCCESS,
        business_value_nanos: int = 0,
        outcome_label: str = "",
        labels: Mapping[str, str] | None = None,
        model: str = "",
        wait: bool = False,
    ) -> ReportResult | None:
        """Queue a usage report; with `wait=True`, ship it now and return its result."""
        item = convert.usage_report(
            decision_id,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
            latency_ms=latency_ms,
            outcome=outcome,
            business_value_nanos=business_value_nanos,
            outcome_label=outcome_label,
            labels=labels,
            model=model,
        )
        return self._batcher.submit(item, wait=wait, timeout=CLOSE_TIMEOUT if wait else None)

    def flush(self, timeout: float | None = CLOSE_TIMEOUT) -> bool:
        """Ship every queued report now; True once all were sent (or failed and logged)."""
        return self._batcher.flush(timeout)

    def close(self) -> None:
        """Flush queued reports and close the channel. Idempotent."""
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRouterClient:
    """`RouterClient` on grpc.aio: `await route(...)`, `await report(...)`, `await aclose()`."""

    def __init__(self, target: str, *, batch_policy: BatchPolicy | None = None) -> None:
        self.target = target
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = router_pb2_grpc.RouterStub(self._channel)
        self._batcher: AsyncReportBatcher[router_pb2.UsageReport, ReportResult] = (
            AsyncReportBatcher(self._send_reports, batch_policy, describe=_decision_of)
        )
        self._closed = False

    async def _send_reports(self, reports: Sequence[router_pb2.UsageReport]) -> list[ReportResult]:
        try:
            response = await self._stub.Report(
                convert.report_request(reports), timeout=REPORT_TIMEOUT
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, self.target) from None
        return convert.report_results(response, reports)

    async def route(
        self,
        capability: str,
        *,
        tenant: str = "",
        team: str = "",
        sensitivity: Sensitivity | str = Sensitivity.INTERNAL,
        risk: RiskLevel | str = RiskLevel.LOW,
        priority: Priority | str = Priority.INTERACTIVE,
        complexity: Complexity | str | None = None,
        complexity_score: float | None = None,
        input_tokens: int = 0,
        max_output_tokens: int = 0,
        labels: Mapping[str, str] | None = None,
        idempotency_key: str = "",
        approval_id: str = "",
        required_compliance_tags: Iterable[str] = (),
        trace_id: str = "",
        dry_run: bool = False,
        # The gRPC deadline, sent to the sidecar too; same API as RouterClient.route.
        timeout: float = ROUTE_TIMEOUT,  # noqa: ASYNC109
    ) -> RouteResult:
        """Ask which model may serve this request; raises FaregateError on a gRPC error.

        With `dry_run`, the sidecar decides as it would but changes nothing: no budget
        reserved, no throttle tokens taken, no approval requested (`faregate explain`).
        """
        request = convert.route_request(
            capability,
            tenant=tenant,
            team=team,
            sensitivity=sensitivity,
            risk=risk,
            priority=priority,
            complexity=complexity,
            complexity_score=complexity_score,
            input_tokens=input_tokens,
            max_output_tokens=max_output_tokens,
            labels=labels,
            idempotency_key=idempotency_key,
            approval_id=approval_id,
            required_compliance_tags=required_compliance_tags,
            trace_id=trace_id,
            dry_run=dry_run,
        )
        try:
            decision = await self._stub.Route(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error, self.target) from None
        return convert.route_result(decision)

    async def report(
        self,
        decision_id: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        latency_ms: int = 0,
        outcome: Outcome | str = Outcome.SUCCESS,
        business_value_nanos: int = 0,
        outcome_label: str = "",
        labels: Mapping[str, str] | None = None,
        model: str = "",
        wait: bool = False,
    ) -> ReportResult | None:
        """Queue a usage report; with `wait=True`, ship it now and return its result."""
        item = convert.usage_report(
            decision_id,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
            latency_ms=latency_ms,
            outcome=outcome,
            business_value_nanos=business_value_nanos,
            outcome_label=outcome_label,
            labels=labels,
            model=model,
        )
        return await self._batcher.submit(item, wait=wait)

    async def flush(self) -> None:
        await self._batcher.flush()

    async def aclose(self) -> None:
        """Flush queued reports and close the channel. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._batcher.close()
        finally:
            await self._channel.close(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
