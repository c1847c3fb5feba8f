"""TRANSPORT TEST: RouterClient and AsyncRouterClient over a real in-process gRPC server.

Unlike the rest of tests/unit, this module opens sockets: it serves a fake Router on
127.0.0.1:0 in this process so that the clients' own transport (channels, status-code
mapping, report batching and flushing) is exercised for real. No sidecar is involved.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from clients import AsyncRouterClient, FaregateError, ReportResult, RouterClient
from clients.batching import BatchPolicy
from clients.errors import InvalidArgumentError
from faregate.model import Action
from faregate.v1 import router_pb2, router_pb2_grpc, types_pb2


class FakeRouter(router_pb2_grpc.RouterServicer):
    """Allows every known capability on `small-model`; prices each report at 10 nanos/token."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.route_requests: list[router_pb2.RouteRequest] = []
        self.report_batches: list[list[str]] = []
        self.reported: set[str] = set()

    def Route(
        self, request: router_pb2.RouteRequest, context: grpc.ServicerContext
    ) -> router_pb2.RouteDecision:
        with self.lock:
            self.route_requests.append(request)
            number = len(self.route_requests)
        if request.capability != "summarization":
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"capability: unknown capability {request.capability!r}",
            )
        return router_pb2.RouteDecision(
            decision_id=f"d-{number}",
            action=types_pb2.ACTION_ALLOW,
            model="small-model",
            provider="acme-ai",
            tier="small",
            max_output_tokens=600,
            config_version="vtest",
        )

    def Report(
        self, request: router_pb2.ReportRequest, context: grpc.ServicerContext
    ) -> router_pb2.ReportResponse:
        results = []
        with self.lock:
            self.report_batches.append([r.decision_id for r in request.reports])
            for report in request.reports:
                duplicate = report.decision_id in self.reported
                self.reported.add(report.decision_id)
                results.append(
                    router_pb2.ReportResult(
                        decision_id=report.decision_id,
                        accepted=not duplicate,
                        duplicate=duplicate,
                        cost_nanos=0
                        if duplicate
                        else 10 * (report.input_tokens + report.output_tokens),
                    )
                )
        return router_pb2.ReportResponse(results=results)


@pytest.fixture
def router() -> Iterator[tuple[FakeRouter, str]]:
    servicer = FakeRouter()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    router_pb2_grpc.add_RouterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait()


def test_route_returns_a_typed_result(router: tuple[FakeRouter, str]) -> None:
    servicer, target = router
    with RouterClient(target) as client:
        result = client.route(
            "summarization",
            tenant="acme",
            sensitivity="confidential",
            complexity_score=0.25,
            input_tokens=1200,
        )
    assert result.action is Action.ALLOW and result.allowed
    assert (result.model, result.max_output_tokens) == ("small-model", 600)
    (sent,) = servicer.route_requests
    assert sent.sensitivity == types_pb2.SENSITIVITY_CONFIDENTIAL
    assert sent.complexity_score == 0.25 and sent.input_tokens == 1200


def test_server_errors_surface_as_faregate_errors(router: tuple[FakeRouter, str]) -> None:
    _, target = router
    with RouterClient(target) as client, pytest.raises(InvalidArgumentError) as raised:
        client.route("telepathy")
    assert raised.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "capability: unknown capability 'telepathy'" in raised.value.message


def test_unreachable_sidecar_is_unavailable() -> None:
    client = RouterClient("unix:///nonexistent/faregate.sock")
    with client, pytest.raises(FaregateError) as raised:
        client.route("summarization", timeout=2.0)
    assert raised.value.code is grpc.StatusCode.UNAVAILABLE


def test_reports_ship_in_batches_and_close_flushes(router: tuple[FakeRouter, str]) -> None:
    servicer, target = router
    client = RouterClient(target, batch_policy=BatchPolicy(max_batch=100, interval=3600.0))
    for n in range(250):
        assert client.report(f"d-{n}", input_tokens=100, output_tokens=5) is None
    client.close()
    client.close()
    assert [len(batch) for batch in servicer.report_batches] == [100, 100, 50]
    assert len(servicer.reported) == 250


def test_wait_returns_this_reports_result(router: tuple[FakeRouter, str]) -> None:
    servicer, target = router
    with RouterClient(target, batch_policy=BatchPolicy(interval=3600.0)) as client:
        client.report("d-1", input_tokens=10, output_tokens=1)
        first = client.report("d-2", input_tokens=100, output_tokens=20, wait=True)
        again = client.report("d-2", input_tokens=100, output_tokens=20, wait=True)
    assert first == ReportResult("d-2", accepted=True, cost_nanos=1200)
    assert again is not None and again.duplicate and not again.accepted
    assert servicer.report_batches[0] == ["d-1", "d-2"]


def test_async_client_routes_and_reports(router: tuple[FakeRouter, str]) -> None:
    servicer, target = router

    async def scenario() -> tuple[Action, ReportResult | None]:
        async with AsyncRouterClient(target) as client:
            decision = await client.route("summarization", input_tokens=50)
            for n in range(5):
                await client.report(f"bg-{n}", input_tokens=1, output_tokens=1)
            result = await client.report(
                decision.decision_id, input_tokens=50, output_tokens=5, wait=True
            )
            with pytest.raises(InvalidArgumentError):
                await client.route("telepathy")
            await client.report("last", input_tokens=1, output_tokens=1)
        return decision.action, result

    action, result = asyncio.run(scenario())
    assert action is Action.ALLOW
    assert result is not None and result.accepted and result.cost_nanos == 550
    assert servicer.reported >= {"bg-0", "bg-4", "last"}
