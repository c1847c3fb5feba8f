"""The sidecar's end of `ControlPlane.Sync`: snapshots in, usage out, forever.

One stream per session: send `Hello`, wait for `Welcome`, then apply pushed
snapshots (ACK, or NACK with the reason while the old one keeps serving), answer
heartbeats, ship sealed usage batches with their lease closes (as a batch fills,
else every flush interval; each seal made durable first) until each is ACKed,
whatever incarnation sealed it, ask for budget leases as the lease book wants
them (for every budget of a snapshot as soon as it is applied, then at low water,
refresh time or a refused call) and apply the grants, send approval requests as
the engine opens them (every still-pending one again after a reconnect), and
record approval verdicts in the approval book. A session that hears nothing for three heartbeat
intervals is presumed dead. Between sessions the link waits a jittered
exponential backoff, reset once a session got as far as `Welcome`. Batches not
ACKed when a stream drops are sent again, same seq, on the next one; so are
lease requests that were never answered.

This adapter owns the gRPC client and the `faregate.v1` control messages; snapshot
checking, persistence, batching and lease accounting belong to the store, the
journal and the lease book.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from faregate.v1 import control_pb2, control_pb2_grpc, types_pb2
from sidecar.approvals import ApprovalBook
from sidecar.backoff import Backoff
from sidecar.clock import Clock
from sidecar.convert import (
    approval_request_to_pb,
    approval_verdict_from_pb,
    lease_grant_from_pb,
    lease_request_to_pb,
    snapshot_from_wire,
    usage_batch_to_pb,
)
from sidecar.journal import UsageJournal
from sidecar.leases import LeaseBook
from sidecar.snapshot_store import SnapshotStore

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_FLUSH_INTERVAL = 0.2
# A refused batch is retried on the same stream after this long, not in a hot loop.
REFUSED_BATCH_RETRY = 5.0
SILENT_HEARTBEATS = 3
# Low water and refresh times are noticed this often; a first need wakes the link at once.
LEASE_POLL_INTERVAL = 0.25


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this sidecar is, as told to the control plane in `Hello`."""

    sidecar_id: str
    service: str
    incarnation: str
    hostname: str = ""
    software_version: str = ""
    pid: int = 0


class LinkObserver(Protocol):
    def connected_changed(self, connected: bool) -> None: ...

    def records_shipped(self, count: int) -> None: ...

    def records_acked(self, count: int) -> None: ...

    def snapshot_rejected(self) -> None: ...


class _Silent(Exception):
    """The control plane stopped talking without closing the stream."""


@dataclass
class _Session:
    """State of one Sync stream; thrown away when the stream ends."""

    heartbeat_interval: float
    last_heard: float
    outgoing: asyncio.Queue[control_pb2.SidecarMessage] = field(default_factory=asyncio.Queue)
    welcomed: asyncio.Event = field(default_factory=asyncio.Event)
    sent: set[tuple[str, int]] = field(default_factory=set)
    retry_at: dict[tuple[str, int], float] = field(default_factory=dict)

    def send(self, message: control_pb2.SidecarMessage) -> None:
        self.outgoing.put_nowait(message)


class ControlLink:
    def __init__(
        self,
        target: str,
        identity: Identity,
        store: SnapshotStore,
        outbox: UsageJournal,
        observer: LinkObserver,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        channel_factory: Callable[[str], grpc.aio.Channel] = grpc.aio.insecure_channel,
        approvals: ApprovalBook | None = None,
        leases: LeaseBook | None = None,
        durable: Callable[[], Awaitable[None]] | None = None,
        leases_changed: Callable[[], None] | None = None,
    ) -> None:
        self._target = target
        self._identity = identity
        self._store = store
        self._outbox = outbox
        self._observer = observer
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._default_heartbeat = heartbeat_interval
        self._flush_interval = flush_interval
        self._channel_factory = channel_factory
        self._connected = False
        self._wake = asyncio.Event()
        outbox.on_full(self._wake.set)
        # Not `approvals or ...`: an empty book has len() 0 and is falsy.
        self._approvals = approvals if approvals is not None else ApprovalBook()
        self._approvals_wake = asyncio.Event()
        self._approvals.on_request(self._approvals_wake.set)
        self._leases = leases
        self._leases_wake = asyncio.Event()
        if leases is not None:
            leases.on_need(self._leases_wake.set)
        self._durable = durable
        self._leases_changed = leases_changed

    @property
    def connected(self) -> bool:
        """True between `Welcome` and the end of that stream."""
        return self._connected

    async def run(self) -> None:
        """Keep a session up until cancelled."""
        while True:
            session = _Session(self._default_heartbeat, asyncio.get_running_loop().time())
            try:
                await self._session(session)
                problem = "closed the stream"
            except grpc.aio.AioRpcError as exc:
                problem = f"{exc.code().name}: {exc.details()}"
            except _Silent as exc:
                problem = str(exc)
            except Exception as exc:
                log.exception("control link to %s failed", self._target)
                problem = repr(exc)
            finally:
                self._set_connected(False)
            if session.welcomed.is_set():
                self._backoff.reset()
            delay = self._backoff.next_delay()
            log.warning("control plane %s: %s; reconnecting in %.1fs", self._target, problem, delay)
            await asyncio.sleep(delay)

    async def drain(self, max_wait: float) -> bool:
        """Ship what is queued and wait for ACKs, at most `max_wait` s; True if all ACKed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while not self._outbox.is_empty and self._connected and loop.time() < deadline:
            self._wake.set()
            await asyncio.sleep(0.02)
        return self._outbox.is_empty

    def _set_connected(self, connected: bool) -> None:
        if connected != self._connected:
            self._connected = connected
            self._observer.connected_changed(connected)

    async def _session(self, session: _Session) -> None:
        channel = self._channel_factory(self._target)
        tasks: set[asyncio.Task[None]] = set()
        try:
            stub = control_pb2_grpc.ControlPlaneStub(channel)
            call = stub.Sync(None)
            session.send(control_pb2.SidecarMessage(hello=self._hello()))
            tasks = {
                asyncio.create_task(self._read(call, session), name="sync-read"),
                asyncio.create_task(self._write(call, session), name="sync-write"),
                asyncio.create_task(self._heartbeats(session), name="sync-heartbeat"),
                asyncio.create_task(self._ship(session), name="sync-ship"),
                asyncio.create_task(self._send_approvals(session), name="sync-approvals"),
                asyncio.create_task(self._watch(session), name="sync-watch"),
            }
            if self._leases is not None:
                tasks.add(asyncio.create_task(self._ask_for_leases(session), name="sync-leases"))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise whatever ended the session
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await channel.close(None)

    def _hello(self) -> control_pb2.Hello:
        identity = self._identity
        return control_pb2.Hello(
            sidecar_id=identity.sidecar_id,
            service=identity.service,
            incarnation=identity.incarnation,
            snapshot_version=self._store.version,
            hostname=identity.hostname,
            software_version=identity.software_version,
            pid=identity.pid,
        )

    async def _write(
        self,
        call: grpc.aio.StreamStreamCall[control_pb2.SidecarMessage, control_pb2.ControlMessage],
        session: _Session,
    ) -> None:
        # One writer: a gRPC stream must not have two writes in flight.
        while True:
            message = await session.outgoing.get()
            await call.write(message)

    async def _read(
        self,
        call: grpc.aio.StreamStreamCall[control_pb2.SidecarMessage, control_pb2.ControlMessage],
        session: _Session,
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await call.read()
            if not isinstance(message, control_pb2.ControlMessage):
                return  # EOF: the control plane ended the stream
            session.last_heard = loop.time()
            self._handle(message, session)

    def _handle(self, message: control_pb2.ControlMessage, session: _Session) -> None:
        kind = message.WhichOneof("kind")
        if kind == "welcome":
            welcome = message.welcome
            if welcome.heartbeat_interval_ms > 0:
                session.heartbeat_interval = welcome.heartbeat_interval_ms / 1000
            session.welcomed.set()
            self._set_connected(True)
            # The last stream may have dropped requests it had queued or not yet sent.
            self._approvals.resend_pending(self._clock.now_ms())
            if self._leases is not None:
                self._leases.forget_requests()
                self._leases_wake.set()
            log.info(
                "connected to control plane %s (%s), snapshot %s",
                self._target,
                welcome.controlplane_id or "unnamed",
                self._store.version or "none",
            )
        elif kind == "snapshot":
            self._apply_snapshot(message.snapshot.snapshot, session)
        elif kind == "usage_ack":
            self._acked(message.usage_ack, session)
        elif kind == "approval":
            verdict = approval_verdict_from_pb(message.approval)
            if verdict is None:
                log.warning("ignoring unusable approval decision %s", message.approval)
            else:
                log.info("approval %s: %s", verdict.approval_id, verdict.state.value)
                self._approvals.apply(verdict, self._clock.now_ms())
        elif kind == "lease_grant":
            self._apply_grant(message.lease_grant)
        elif kind == "heartbeat":
            pass  # hearing it is the point; `last_heard` is already updated
        else:
            log.debug("ignoring %s from the control plane: not supported yet", kind)

    def _apply_snapshot(self, message: types_pb2.Snapshot, session: _Session) -> None:
        version = message.version
        try:
            self._store.apply(snapshot_from_wire(message))
        except ValueError as exc:  # undecodable or inconsistent: keep serving the old one
            log.warning("rejected snapshot %s: %s", version or "(no version)", exc)
            self._observer.snapshot_rejected()
            nack = control_pb2.SnapshotNack(version=version, reason=str(exc))
            session.send(control_pb2.SidecarMessage(nack=nack))
            return
        log.info("applied snapshot %s (revision %d)", version, message.revision)
        session.send(control_pb2.SidecarMessage(ack=control_pb2.SnapshotAck(version=version)))

    def _apply_grant(self, message: control_pb2.LeaseGrant) -> None:
        grant = lease_grant_from_pb(message)
        if grant is None or self._leases is None:
            log.warning("ignoring unusable lease grant for %r", message.budget)
            return
        self._leases.apply_grant(grant, self._clock.monotonic_ms(), self._clock.now_ms())
        if grant.reason:
            log.info("lease on %s: %s", grant.budget, grant.reason)
        if self._leases_changed is not None:
            self._leases_changed()

    def _acked(self, ack: control_pb2.UsageAck, session: _Session) -> None:
        # Batches replayed from an earlier incarnation's journal keep its name.
        key = (ack.incarnation or self._identity.incarnation, ack.seq)
        if ack.ok or ack.duplicate:
            batch = self._outbox.ack(*key)
            if batch is not None:
                self._observer.records_acked(len(batch.records))
            return
        log.warning(
            "control plane refused usage batch %d: %s; retrying in %.0fs",
            ack.seq,
            ack.error or "no reason given",
            REFUSED_BATCH_RETRY,
        )
        session.sent.discard(key)
        session.retry_at[key] = asyncio.get_running_loop().time() + REFUSED_BATCH_RETRY

    async def _heartbeats(self, session: _Session) -> None:
        await session.welcomed.wait()
        while True:
            await asyncio.sleep(session.heartbeat_interval)
            heartbeat = control_pb2.Heartbeat(
                sent_at_unix_ms=self._clock.now_ms(), snapshot_version=self._store.version
            )
            session.send(control_pb2.SidecarMessage(heartbeat=heartbeat))

    async def _ship(self, session: _Session) -> None:
        await session.welcomed.wait()
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            # Seal only while connected, so an outage does not pile up tiny batches.
            self._outbox.seal_all()
            if self._outbox.needs_sync:
                # A batch may only leave once its seal (and its records) are on disk.
                if self._durable is not None:
                    await self._durable()
                else:
                    self._outbox.sync()
            now = loop.time()
            for batch in self._outbox.pending():
                key = (batch.incarnation, batch.seq)
                if key in session.sent or session.retry_at.get(key, 0.0) > now:
                    continue
                session.sent.add(key)
                session.send(control_pb2.SidecarMessage(usage=usage_batch_to_pb(batch)))
                self._observer.records_shipped(len(batch.records))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)

    async def _send_approvals(self, session: _Session) -> None:
        await session.welcomed.wait()
        while True:
            self._approvals_wake.clear()
            for request in self._approvals.take_outgoing():
                message = approval_request_to_pb(request)
                session.send(control_pb2.SidecarMessage(approval_request=message))
            await self._approvals_wake.wait()

    async def _ask_for_leases(self, session: _Session) -> None:
        assert self._leases is not None
        await session.welcomed.wait()
        while True:
            self._leases_wake.clear()
            asks = self._leases.requests(self._clock.monotonic_ms(), self._clock.now_ms())
            for ask in asks:
                message = lease_request_to_pb(ask)
                session.send(control_pb2.SidecarMessage(lease_request=message))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leases_wake.wait(), LEASE_POLL_INTERVAL)

    async def _watch(self, session: _Session) -> None:
        loop = asyncio.get_running_loop()
        while True:
            silence = SILENT_HEARTBEATS * session.heartbeat_interval
            await asyncio.sleep(session.heartbeat_interval)
            quiet_for = loop.time() - session.last_heard
            if quiet_for > silence:
                raise _Silent(f"nothing heard for {quiet_for:.1f}s; reconnecting")
