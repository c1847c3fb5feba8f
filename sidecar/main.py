"""`faregate-sidecar`: parse flags, wire the parts together, serve until signalled.

The only module that builds concrete classes and connects them; everything else
gets its collaborators through its constructor. Startup order: state dir and
sidecar id, usage journal replayed (and the previous process's open leases
closed as forfeited), last good snapshot from disk, metrics endpoint, Router +
health gRPC server, ready file, then the control link and lease housekeeping
(report deadlines, period rollover, lease file, gauges) in the background.
Shutdown on SIGTERM/SIGINT: stop taking requests, settle what was never
reported, close every lease (its unspent remainder returns), make the journal
durable, give it up to 2 s to be ACKed (what is not stays journaled for the next
start), close the link and the metrics endpoint, remove the ready file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import re
import signal
import socket
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from faregate.model import Snapshot
from faregate.v1 import router_pb2, router_pb2_grpc
from sidecar.approvals import ApprovalBook
from sidecar.clock import SystemClock
from sidecar.compiled import PolicyCache
from sidecar.context import Runtime
from sidecar.control_link import ControlLink, Identity
from sidecar.convert import SnapshotFileCodec
from sidecar.decider import Decider, new_approval_id
from sidecar.group_commit import GroupCommit
from sidecar.journal import UsageJournal
from sidecar.lease_file import LeaseFile, forfeits
from sidecar.leases import LeaseBook
from sidecar.metrics import MetricsServer, SidecarMetrics
from sidecar.router_service import RouterService
from sidecar.snapshot_store import SnapshotStore
from sidecar.state_dir import load_or_create_sidecar_id, write_atomic
from sidecar.throttle import ThrottleBook
from sidecar.usage import DecisionRegistry, UsageRecorder

log = logging.getLogger("faregate.sidecar")

DEFAULT_CONTROLPLANE = "127.0.0.1:7400"
DEFAULT_LISTEN = "127.0.0.1:7401"
DEFAULT_METRICS_LISTEN = "127.0.0.1:9401"
SHUTDOWN_FLUSH_SECONDS = 2.0
SHUTDOWN_GRACE_SECONDS = 1.0
HOUSEKEEPING_SECONDS = 1.0
_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Health is reported for the server as a whole ("") and for the Router service by name.
_HEALTH_SERVICES = ("", router_pb2.DESCRIPTOR.services_by_name["Router"].full_name)


@dataclass(frozen=True, slots=True)
class Options:
    controlplane: str
    service: str
    listen: str
    state_dir: Path
    metrics_host: str
    metrics_port: int
    ready_file: Path | None


def _host_port(value: str, flag: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{flag}: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="faregate-sidecar",
        description="Faregate sidecar: routes a service's model requests from local state.",
    )
    parser.add_argument(
        "--controlplane",
        default=os.environ.get("FAREGATE_CONTROLPLANE") or DEFAULT_CONTROLPLANE,
        metavar="HOST:PORT",
        help="control plane address (default: $FAREGATE_CONTROLPLANE or %(default)s)",
    )
    parser.add_argument("--service", required=True, metavar="NAME", help="service served")
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="unix:///PATH|HOST:PORT",
        help="Router gRPC address (default: %(default)s; port 0 picks a free port)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="where the sidecar id and last good snapshot live "
        "(default: ./.faregate/sidecar-SERVICE)",
    )
    parser.add_argument(
        "--metrics-listen",
        default=DEFAULT_METRICS_LISTEN,
        metavar="HOST:PORT",
        help="Prometheus /metrics address (default: %(default)s)",
    )
    parser.add_argument(
        "--ready-file", type=Path, metavar="PATH", help="JSON file written once serving"
    )
    args = parser.parse_args(argv)
    if not _SERVICE_NAME.match(args.service):
        parser.error("--service: use letters, digits, '.', '_' or '-'")
    try:
        _host_port(args.controlplane, "--controlplane")
        metrics_host, metrics_port = _host_port(args.metrics_listen, "--metrics-listen")
        if not args.listen.startswith("unix://"):
            _host_port(args.listen, "--listen")
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.listen.startswith("unix://") and not args.listen.startswith("unix:///"):
        parser.error("--listen: a Unix socket must be an absolute path: unix:///PATH")
    state_dir = args.state_dir or Path(".faregate") / f"sidecar-{args.service}"
    return Options(
        controlplane=args.controlplane,
        service=args.service,
        listen=args.listen,
        state_dir=state_dir,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        ready_file=args.ready_file,
    )


def _software_version() -> str:
    try:
        return importlib.metadata.version("faregate")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _bind(server: grpc.aio.Server, listen: str) -> str:
    """Bind the Router server; returns the address actually listened on."""
    if listen.startswith("unix://"):
        path = Path(listen.removeprefix("unix://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a socket left by a crashed predecessor would block the bind
        server.add_insecure_port(listen)
        return listen
    host, _ = _host_port(listen, "--listen")
    port = server.add_insecure_port(listen)
    if port == 0:  # older gRPC reports a failed bind this way instead of raising
        raise RuntimeError(f"cannot listen on {listen}")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Sidecar:
    """One running sidecar process: its parts, and start/stop in the right order."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.clock = clock = SystemClock()
        incarnation = uuid.uuid4().hex
        self.registry = CollectorRegistry()
        self.metrics = SidecarMetrics(self.registry)
        # One cache: the store compiles each snapshot's policy as it checks it, and the
        # decider finds it there.
        policies = PolicyCache()
        self.store = SnapshotStore(options.state_dir, SnapshotFileCodec(), policies)
        self.store.subscribe(self.metrics.snapshot_applied)
        self.leases = LeaseBook(incarnation)
        # Every budget of a snapshot gets a lease asked for as soon as it is applied.
        self.store.subscribe(lambda snapshot: self.leases.configure(snapshot.budgets))
        self.journal = UsageJournal.open(options.state_dir, incarnation)
        self.lease_file = LeaseFile(options.state_dir)
        self._forfeit_previous_leases()
        self.commit = GroupCommit(self.journal, self.metrics.fsynced)
        decisions = DecisionRegistry(clock)
        self.approvals = ApprovalBook()
        runtime = Runtime(ThrottleBook(), self.approvals, new_approval_id, self.leases, self.leases)
        self.decider = Decider(
            self.store, decisions, clock=clock, runtime=runtime, policies=policies
        )
        self.recorder = UsageRecorder(
            options.service, decisions, self.journal, self.store, clock, leases=self.leases
        )
        sidecar_id = load_or_create_sidecar_id(options.state_dir, lambda: uuid.uuid4().hex)
        identity = Identity(
            sidecar_id=sidecar_id,
            service=options.service,
            incarnation=incarnation,
            hostname=socket.gethostname(),
            software_version=_software_version(),
            pid=os.getpid(),
        )
        self.link = ControlLink(
            options.controlplane,
            identity,
            self.store,
            self.journal,
            self.metrics,
            clock,
            approvals=self.approvals,
            leases=self.leases,
            durable=self.commit.commit,
            leases_changed=self._leases_changed,
        )
        # The typing stubs only know the synchronous servicer; this is its asyncio twin.
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.server = grpc.aio.server()
        self.listen_address = ""
        self.metrics_server: MetricsServer | None = None
        self._snapshot_changed = asyncio.Event()
        self.store.subscribe(lambda _: self._snapshot_changed.set())

    def _forfeit_previous_leases(self) -> None:
        summary = self.journal.summary
        if summary.resent_batches or summary.unsealed_entries:
            log.info(
                "journal replayed: %d sealed batches to resend, %d unsealed entries",
                summary.resent_batches,
                summary.unsealed_entries,
            )
        previous = self.lease_file.read()
        for close in forfeits(previous, summary.open_closes, summary.spent_by_lease):
            log.warning(
                "forfeiting lease %s on %s of a previous process", close.lease_id, close.budget
            )
            self.journal.append_close(close)
        self.journal.sync()
        self.lease_file.write([])  # the forfeits are journaled: the old leases are done

    def _leases_changed(self) -> None:
        """After a grant: record the open leases before their authority is used."""
        self.lease_file.write(self.leases.leases(self.clock.monotonic_ms()))
        for close in self.leases.take_closes():
            self.journal.append_close(close)

    def _housekeeping(self) -> None:
        self.metrics.settled_unreported(self.recorder.settle_overdue())
        self.leases.tick(self.clock.now_ms())
        for close in self.leases.take_closes():
            self.journal.append_close(close)
        views = self.leases.leases(self.clock.monotonic_ms())
        self.lease_file.write(views)
        self.metrics.leases_observed(views)
        self.metrics.journal_observed(self.journal.queued_records + self.journal.pending_records)

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                self._housekeeping()
            except OSError:
                log.exception("lease housekeeping failed; retrying")

    async def serve(self, stop: asyncio.Event) -> None:
        options = self.options
        if options.ready_file is not None:
            # A file left by an earlier run would announce readiness too early.
            options.ready_file.unlink(missing_ok=True)
        loaded = self.store.load()
        if loaded is not None:
            log.info("serving snapshot %s from %s (fail-static)", loaded.version, options.state_dir)
        self.metrics_server = MetricsServer(
            options.metrics_host, options.metrics_port, self.registry
        )
        router_pb2_grpc.add_RouterServicer_to_server(
            RouterService(self.decider, self.recorder, self.metrics, self.commit.commit),
            self.server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.listen_address = _bind(self.server, options.listen)
        await self._update_health(self.store.current)
        await self.server.start()
        self._write_ready_file()
        log.info(
            "faregate-sidecar %s listening on %s (metrics %s, snapshot %s)",
            options.service,
            self.listen_address,
            self.metrics_server.address,
            self.store.version or "none",
        )
        link = asyncio.create_task(self.link.run(), name="control-link")
        watcher = asyncio.create_task(self._follow_snapshots(), name="snapshot-watch")
        keeper = asyncio.create_task(self._keep_leases(), name="lease-housekeeping")
        try:
            await stop.wait()
        finally:
            keeper.cancel()
            await self._shutdown(link, watcher)

    async def _follow_snapshots(self) -> None:
        while True:
            await self._snapshot_changed.wait()
            self._snapshot_changed.clear()
            await self._update_health(self.store.current)
            self._write_ready_file()

    async def _update_health(self, snapshot: Snapshot | None) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if snapshot is not None
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in _HEALTH_SERVICES:
            await self.health.set(name, status)

    def _write_ready_file(self) -> None:
        path = self.options.ready_file
        if path is None or self.metrics_server is None:
            return
        ready = {
            "listen": self.listen_address,
            "metrics": self.metrics_server.address,
            "pid": os.getpid(),
            "snapshot_version": self.store.version,
        }
        write_atomic(path, (json.dumps(ready) + "\n").encode())

    async def _shutdown(self, link: asyncio.Task[None], watcher: asyncio.Task[None]) -> None:
        log.info("faregate-sidecar %s stopping", self.options.service)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(SHUTDOWN_GRACE_SECONDS)
        watcher.cancel()
        # No Report can arrive any more: what is still reserved is settled at its
        # reservation, so every lease's spend is final and it can be closed.
        self.metrics.settled_unreported(self.recorder.settle_all_unreported())
        self.leases.close_all("sidecar shutting down")
        for close in self.leases.take_closes():
            self.journal.append_close(close)
        await self.commit.commit()
        self.lease_file.write(self.leases.leases(self.clock.monotonic_ms()))
        if not await self.link.drain(SHUTDOWN_FLUSH_SECONDS):
            log.warning(
                "stopping with %d journal entries not acknowledged by the control plane; "
                "they are sent on the next start",
                self.journal.queued_records + self.journal.pending_records,
            )
        link.cancel()
        await asyncio.gather(link, watcher, return_exceptions=True)
        self.journal.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
        if self.options.ready_file is not None:
            self.options.ready_file.unlink(missing_ok=True)
        log.info("faregate-sidecar %s stopped", self.options.service)


async def _run(options: Options) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await Sidecar(options).serve(stop)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if sys.platform != "win32":
            import uvloop

            uvloop.run(_run(options))
        else:
            asyncio.run(_run(options))
    except (OSError, RuntimeError) as exc:
        log.error("faregate-sidecar %s cannot start: %s", options.service, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
