"""`faregate-controlplane`: the command line, and the one place concrete classes meet.

`serve` (the default) migrates the store, serves Admin, ControlPlane.Sync and the
gRPC health service, exposes `/metrics`, writes the ready file once serving and
stops cleanly on SIGTERM/SIGINT. `migrate` applies the migrations and exits.
Flags and defaults are those of docs/architecture.md ("Processes").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from controlplane.admin_service import AdminService
from controlplane.approval_feed import ApprovalWatcher
from controlplane.clock import SystemClock
from controlplane.lease_sweeper import LeaseSweeper
from controlplane.leases import DEFAULT_EXPIRY_MARGIN_MS, DEFAULT_TTL_MS
from controlplane.metrics import ControlPlaneMetrics, serve_metrics
from controlplane.migrate import upgrade
from controlplane.snapshot_source import RevisionWatcher
from controlplane.sql_store import SqlStore, public_url
from controlplane.sync_service import SyncService
from faregate.v1 import admin_pb2_grpc, control_pb2_grpc

log = logging.getLogger("faregate.controlplane")

# The asyncio health servicer; grpc-stubs does not declare `health.aio`.
_HEALTH_AIO: Any = health.aio  # type: ignore[attr-defined]

DEFAULT_LISTEN = "127.0.0.1:7400"
DEFAULT_METRICS_LISTEN = "127.0.0.1:9400"
DEFAULT_HEARTBEAT_INTERVAL = 5.0
SHUTDOWN_GRACE_S = 5.0


def default_data_dir() -> Path:
    env = os.environ.get("FAREGATE_DATA_DIR")
    return Path(env) if env else Path.home() / ".local" / "share" / "faregate"


def database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    return f"sqlite:///{Path(args.data_dir).expanduser().resolve() / 'faregate.db'}"


def split_host_port(address: str, flag: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SystemExit(f"{flag}: expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def _store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default="",
        help="SQLAlchemy URL (default: sqlite:///DATA_DIR/faregate.db)",
    )
    parser.add_argument(
        "--data-dir",
        default=str(default_data_dir()),
        help="state directory (default: $FAREGATE_DATA_DIR or ~/.local/share/faregate)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faregate-controlplane", description="Faregate control plane."
    )
    commands = parser.add_subparsers(dest="command", metavar="{serve,migrate}")
    serve = commands.add_parser("serve", help="serve Admin and Sync (the default)")
    serve.add_argument("--listen", default=DEFAULT_LISTEN, help="gRPC HOST:PORT (port 0: any)")
    _store_flags(serve)
    serve.add_argument(
        "--metrics-listen", default=DEFAULT_METRICS_LISTEN, help="/metrics HOST:PORT"
    )
    serve.add_argument("--ready-file", default="", help="JSON written once serving")
    serve.add_argument(
        "--heartbeat-interval",
        type=float,
        default=DEFAULT_HEARTBEAT_INTERVAL,
        help="seconds between heartbeats (default 5)",
    )
    serve.add_argument(
        "--lease-ttl",
        type=float,
        default=DEFAULT_TTL_MS / 1000,
        help="seconds a budget lease lets a sidecar spend without refreshing (default 30)",
    )
    serve.add_argument(
        "--lease-expiry-margin",
        type=float,
        default=DEFAULT_EXPIRY_MARGIN_MS / 1000,
        help="seconds past its TTL before an unrefreshed lease is taken back, and never "
        "sooner after this replica starts (default 600)",
    )
    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    _store_flags(migrate)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    argv = list(argv)
    # `serve` is the default subcommand: bare flags are serve's flags.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        if args.heartbeat_interval <= 0:
            raise SystemExit("--heartbeat-interval: must be positive")
        if args.lease_ttl < 0.003:  # refresh_after is a third of it, in whole ms
            raise SystemExit("--lease-ttl: must be positive")
        if args.lease_expiry_margin < 0:
            raise SystemExit("--lease-expiry-margin: must not be negative")
    return args


def controlplane_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def write_ready_file(path: Path, listen: str, metrics: str) -> None:
    """Atomically: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"listen": listen, "metrics": metrics, "pid": os.getpid()}))
    tmp.replace(path)


async def serve(args: argparse.Namespace) -> None:
    url = database_url(args)
    ready_file = Path(args.ready_file) if args.ready_file else None
    listen_host, listen_port = split_host_port(args.listen, "--listen")
    metrics_host, metrics_port = split_host_port(args.metrics_listen, "--metrics-listen")

    store = SqlStore.open(url)
    await asyncio.to_thread(upgrade, store.engine)
    clock = SystemClock()
    metrics = ControlPlaneMetrics(CollectorRegistry())
    identity = controlplane_id()
    watcher = RevisionWatcher(store)
    await watcher.refresh()
    approvals = ApprovalWatcher(store, clock)
    sync = SyncService(
        store=store,
        source=watcher,
        metrics=metrics,
        clock=clock,
        controlplane_id=identity,
        heartbeat_interval=args.heartbeat_interval,
        approvals=approvals,
        lease_ttl_ms=round(args.lease_ttl * 1000),
    )
    sweeper = LeaseSweeper(store, clock, metrics, margin_ms=round(args.lease_expiry_margin * 1000))
    admin = AdminService(
        store=store,
        source=watcher,
        metrics=metrics,
        clock=clock,
        on_applied=watcher.poke,
        on_decided=approvals.poke,
    )
    health_servicer = _HEALTH_AIO.HealthServicer()
    server = grpc.aio.server()
    admin_pb2_grpc.add_AdminServicer_to_server(admin, server)
    control_pb2_grpc.add_ControlPlaneServicer_to_server(sync, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(f"{args.listen.rsplit(':', 1)[0]}:{listen_port}")
    metrics_server = serve_metrics(metrics.registry, metrics_host, metrics_port)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    watcher_task = asyncio.create_task(watcher.run())
    approvals_task = asyncio.create_task(approvals.run())
    sweeper_task = asyncio.create_task(sweeper.run())

    listen = f"{listen_host}:{port}"
    log.info(
        "faregate-controlplane listening on %s (metrics %s, database %s)",
        listen,
        metrics_server.address,
        public_url(url),
    )
    if ready_file is not None:
        write_ready_file(ready_file, listen, metrics_server.address)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("shutting down (%s)", identity)
    finally:
        await health_servicer.enter_graceful_shutdown()
        sync.close()  # sidecars see their stream end and reconnect (to another replica)
        await server.stop(SHUTDOWN_GRACE_S)
        for task in (watcher_task, approvals_task, sweeper_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await asyncio.to_thread(store.disconnect_all, identity, clock.now_ms())
        metrics_server.stop()
        store.close()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
        log.info("stopped")


def migrate(args: argparse.Namespace) -> None:
    url = database_url(args)
    store = SqlStore.open(url)
    try:
        upgrade(store.engine)
    finally:
        store.close()
    log.info("database %s is up to date", public_url(url))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "migrate":
        migrate(args)
        return
    Path(args.data_dir).expanduser().mkdir(parents=True, exist_ok=True)
    if args.ready_file:
        Path(args.ready_file).unlink(missing_ok=True)  # a stale file points at a dead port
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))


if __name__ == "__main__":
    main()
