"""Benchmark: Route and Report through real processes, as a service sees them.

Starts a real `faregate-controlplane` (SQLite in a temporary directory) and real
`faregate-sidecar` processes with the helpers of `tests.integration.processes`,
applies `examples/faregate.yaml` through `clients.AdminClient`, then measures
through `clients.RouterClient`:

- `route()` latency (median, p90, p99) over the Unix socket and, side by side in
  alternating chunks, over loopback TCP to a second sidecar;
- the gRPC floor: the standard health `Check` on the same socket, interleaved too;
- where a Unix-socket `route()` spends its time: the sidecar's own handler time
  (from its `faregate_sidecar_route_seconds` histogram, a mean), the client's
  request/response conversion (timed in process), and the rest (gRPC on both ends,
  the kernel, the event loop);
- Report throughput: N reports each sent with `report(..., wait=True)` (one
  blocking round trip each) against N reports queued with `report(...)` and shipped
  by `flush()` (batched in the background), alternating which goes first.

All processes share the machine's cores with this one, so absolute numbers include
contention; the ratios are the point.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from clients import AdminClient, RouterClient
from clients import convert as client_convert
from faregate.v1 import router_pb2, router_pb2_grpc
from tests.bench.report import Section, add_latency
from tests.bench.stats import Latency, median_rate, rate
from tests.integration import processes

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "faregate.yaml"


class RouteShape(NamedTuple):
    capability: str
    team: str
    input_tokens: int
    sensitivity: str = "internal"


# A mix of the example's capabilities and sensitivities, cycled through.
ROUTES = (
    RouteShape("classification", "support", 300),
    RouteShape("sentiment", "support", 120),
    RouteShape("summarization", "legal", 6_000),
    RouteShape("translation", "legal", 1_800),
    RouteShape("translation", "legal", 40_000, "confidential"),
    RouteShape("forecasting", "planning", 2_500),
    RouteShape("classification", "risk", 900, "regulated"),
    RouteShape("summarization", "support", 150_000),
)


@dataclass(frozen=True, slots=True)
class Options:
    routes: int = 3_000  # timed route() calls per transport
    warmup: int = 300
    chunk: int = 250  # calls per turn while the two transports alternate
    reports: int = 1_000  # reports per mode per round
    report_rounds: int = 3
    tcp: bool = True


def _route(router: RouterClient, i: int) -> str:
    shape = ROUTES[i % len(ROUTES)]
    decision = router.route(
        shape.capability,
        tenant="acme",
        team=shape.team,
        sensitivity=shape.sensitivity,
        input_tokens=shape.input_tokens,
    )
    return decision.decision_id


def _scrape(process: processes.ServerProcess) -> dict[str, float]:
    """The sidecar's metric samples by name and labels, e.g. `..._reports_total{accepted}`."""
    url = f"http://{process.metrics_address}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(sample.labels.values())
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def _handler_mean_us(before: dict[str, float], after: dict[str, float]) -> float:
    name = "faregate_sidecar_route_seconds"
    calls = after[f"{name}_count"] - before[f"{name}_count"]
    seconds = after[f"{name}_sum"] - before[f"{name}_sum"]
    return seconds / max(calls, 1) * 1e6


def _client_request(shape: RouteShape) -> router_pb2.RouteRequest:
    """What `RouterClient.route` builds for `shape` before sending it."""
    return client_convert.route_request(
        shape.capability,
        tenant="acme",
        team=shape.team,
        sensitivity=shape.sensitivity,
        risk="low",
        priority="interactive",
        complexity=None,
        complexity_score=None,
        input_tokens=shape.input_tokens,
        max_output_tokens=0,
        labels=None,
        idempotency_key="",
        approval_id="",
        required_compliance_tags=(),
        trace_id="",
    )


def _client_convert(channel: grpc.Channel, samples: int = 2_000) -> Latency:
    """What `route()` spends building the request and reading the answer, in process."""
    shape = ROUTES[0]
    answer = router_pb2_grpc.RouterStub(channel).Route(_client_request(shape), timeout=2)
    out: list[int] = []
    for _ in range(samples):
        began = time.perf_counter_ns()
        _client_request(shape)
        client_convert.route_result(answer)
        out.append(time.perf_counter_ns() - began)
    return Latency.of_nanos(out)


def _tcp_sidecar(workdir: Path, controlplane: str) -> processes.ServerProcess:
    """`processes.sidecar`, listening on loopback TCP (port 0) instead of a Unix socket."""
    unix = processes.sidecar(workdir, controlplane, "bench-tcp")
    args = list(unix.args)
    args[args.index("--listen") + 1] = "127.0.0.1:0"
    return dataclasses.replace(unix, args=args)


@contextlib.contextmanager
def _running(process: processes.ServerProcess) -> Iterator[processes.ServerProcess]:
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _wait_for_snapshot(router: RouterClient, version: str) -> None:
    def serving() -> bool:
        try:
            return router.route("classification", tenant="acme").config_version == version
        except Exception:  # UNAVAILABLE until the snapshot arrives
            return False

    processes.wait_for(serving, timeout=30, what=f"snapshot {version} on {router.target}")


def _time_routes(router: RouterClient, start: int, count: int, out: list[int]) -> None:
    for i in range(start, start + count):
        began = time.perf_counter_ns()
        _route(router, i)
        out.append(time.perf_counter_ns() - began)


def _time_health_checks(health: health_pb2_grpc.HealthStub, count: int, out: list[int]) -> None:
    """The floor under route(): the cheapest unary gRPC call the same sidecar answers."""
    request = health_pb2.HealthCheckRequest(service="")
    for _ in range(count):
        began = time.perf_counter_ns()
        health.Check(request, timeout=2)
        out.append(time.perf_counter_ns() - began)


def _measure_routes(
    section: Section,
    unix: RouterClient,
    unix_process: processes.ServerProcess,
    tcp: RouterClient | None,
    options: Options,
) -> None:
    with grpc.insecure_channel(unix_process.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        warm: list[int] = []
        _time_health_checks(health, options.warmup, warm)
        for router in (unix, tcp):
            if router is not None:
                _time_routes(router, 0, options.warmup, warm)
        before = _scrape(unix_process)
        unix_ns: list[int] = []
        tcp_ns: list[int] = []
        health_ns: list[int] = []
        for start in range(0, options.routes, options.chunk):
            count = min(options.chunk, options.routes - start)
            _time_routes(unix, start, count, unix_ns)
            if tcp is not None:
                _time_routes(tcp, start, count, tcp_ns)
            _time_health_checks(health, count, health_ns)
        handler_us = _handler_mean_us(before, _scrape(unix_process))
        converting = _client_convert(channel)
    over_unix = Latency.of_nanos(unix_ns)
    add_latency(section, "route_unix", "route() over Unix socket", over_unix)
    if tcp is not None:
        over_tcp = Latency.of_nanos(tcp_ns)
        add_latency(section, "route_tcp", "route() over loopback TCP", over_tcp)
        section.add(
            "route_tcp_over_unix",
            "TCP / Unix median",
            over_tcp.median_us / over_unix.median_us,
            "x",
        )
    floor = Latency.of_nanos(health_ns)
    add_latency(section, "health_check_unix", "gRPC health Check, same socket", floor)
    section.add(
        "route_unix.sidecar_handler_mean_us", "  of which sidecar handler (mean)", handler_us, "µs"
    )
    section.add(
        "route_unix.client_convert_median_us",
        "  of which client conversion (median)",
        converting.median_us,
        "µs",
    )
    section.add(
        "route_unix.transport_rest_us",
        "  rest: gRPC, kernel, event loops",
        over_unix.median_us - handler_us - converting.median_us,
        "µs",
    )


def _measure_reports(
    section: Section, router: RouterClient, process: processes.ServerProcess, options: Options
) -> None:
    n = options.reports
    before = _scrape(process)
    blocking: list[float] = []
    queued: list[float] = []
    for round_ in range(options.report_rounds):
        for mode in ("wait", "queued") if round_ % 2 == 0 else ("queued", "wait"):
            ids = [_route(router, i) for i in range(n)]
            began = time.perf_counter_ns()
            for decision_id in ids:
                router.report(
                    decision_id, input_tokens=1_000, output_tokens=200, wait=mode == "wait"
                )
            if mode == "queued" and not router.flush(timeout=30):
                raise RuntimeError("queued reports were not all shipped within 30 s")
            elapsed = time.perf_counter_ns() - began
            (blocking if mode == "wait" else queued).append(rate(n, elapsed))
    after = _scrape(process)
    key = "faregate_sidecar_reports_total{accepted}"
    accepted = after.get(key, 0.0) - before.get(key, 0.0)
    waited, batched = median_rate(blocking), median_rate(queued)
    section.add("report_wait.reports_per_s", "report(wait=True), one by one", waited, "reports/s")
    section.add("report_queued.reports_per_s", "report() queued + flush()", batched, "reports/s")
    section.add("report_queued_over_wait", "queued / wait throughput", batched / waited, "x")
    section.note(
        f"reports: {n:,} per mode per round, {options.report_rounds} rounds, median of rounds; "
        f"sidecar accepted {accepted:,.0f} of {2 * n * options.report_rounds:,}"
    )


def run(options: Options = Options()) -> Section:
    section = Section("router_rpc", "Route and Report through real processes")
    with tempfile.TemporaryDirectory(prefix="fg-bench-") as tmp:
        workdir = Path(tmp)
        database = f"sqlite:///{workdir / 'faregate.db'}"
        with _running(processes.controlplane(workdir, database)) as cp:
            with AdminClient(cp.address) as admin:
                applied = admin.apply_config(EXAMPLE.read_text(), source_name=EXAMPLE.name)
            with contextlib.ExitStack() as stack:
                unix_process = stack.enter_context(
                    _running(processes.sidecar(workdir, cp.address, "bench-unix"))
                )
                unix = stack.enter_context(RouterClient(unix_process.address))
                _wait_for_snapshot(unix, applied.snapshot_version)
                tcp: RouterClient | None = None
                if options.tcp:
                    tcp_process = stack.enter_context(_running(_tcp_sidecar(workdir, cp.address)))
                    tcp = stack.enter_context(RouterClient(tcp_process.address))
                    _wait_for_snapshot(tcp, applied.snapshot_version)
                _measure_routes(section, unix, unix_process, tcp, options)
                _measure_reports(section, unix, unix_process, options)
    section.note(
        f"route(): {options.routes:,} timed calls per transport after {options.warmup} warm-up, "
        f"alternating in chunks of {options.chunk}; example config, {len(ROUTES)} request shapes"
    )
    return section
