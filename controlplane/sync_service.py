"""ControlPlane.Sync: one bidirectional stream per sidecar (docs/architecture.md, "Sync").

The first message must be a `Hello`; the answer is a `Welcome`, then a `SnapshotPush`
whenever the current snapshot's version differs from what the sidecar runs, is not
already on its way, and was never NACKed by that sidecar (NACKs are durable, so a
reconnect does not bring a rejected version back). ACKs, NACKs, heartbeats and
connection state are recorded in the store; usage batches are applied once through
it and answered with `UsageAck`. Both sides send heartbeats every interval.

Leases: a `LeaseRequest` is resolved against the current snapshot to the budget's
current period (a request naming a period that has ended gets a lease on the new
one), granted through the store, which commits it before it is answered here with a
`LeaseGrant` (cumulative amount, TTL, refresh time). An unknown budget gets a grant of
0 with the reason. `soft_threshold_crossed` reports committed spend alone past the
lowest soft threshold (`controlplane.leases.soft_threshold_crossed`). A usage batch's
charges without a period key count in the period their call was decided in.

Approvals: an `ApprovalRequest` is stored once per approval id, waiting the
`approval_ttl` of the governance in force (a request already closed is answered with
its decision at once). Every decision the `ApprovalFeed` announces, whichever replica
took it, goes to every stream here; a sidecar that (re)connects is first sent its
own decisions that still matter (`controlplane.approvals.worth_replaying`).

Each stream runs three tasks (reader, pusher, heartbeat) that feed one outbox; the
handler alone writes to the stream, so messages never interleave. Blocking store
calls run in threads.

A gRPC service: may import grpc and `faregate.v1`; must not import sqlalchemy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from controlplane.approval_feed import ApprovalFeed
from controlplane.approvals import Approval, ApprovalState, governance_of
from controlplane.clock import Clock
from controlplane.convert import (
    approval_from_pb,
    decision_to_pb,
    hello_from_pb,
    lease_grant_to_pb,
)
from controlplane.leases import (
    DEFAULT_TTL_MS,
    LeaseGrant,
    lease_ask,
    soft_threshold_crossed,
    with_period_keys,
)
from controlplane.metrics import ControlPlaneMetrics
from controlplane.snapshot_source import SnapshotSource
from controlplane.store import Store, UsageBatch
from faregate.convert import lease_close_from_pb, snapshot_to_pb, usage_from_pb
from faregate.model import Budget, Snapshot
from faregate.v1 import control_pb2, control_pb2_grpc, types_pb2

log = logging.getLogger(__name__)

# Ends a stream: put on an outbox by the reader (sidecar hung up) or by close().
_END = None


class _Stream:
    """What one open stream knows about its sidecar."""

    def __init__(self, hello: control_pb2.Hello, nacked: frozenset[str]) -> None:
        self.sidecar_id = hello.sidecar_id
        self.service = hello.service
        self.incarnation = hello.incarnation
        self.running = hello.snapshot_version  # what the sidecar runs (hello, then ACKs)
        self.in_flight = ""  # pushed, not yet ACKed or NACKed
        self.nacked = set(nacked)
        self.outbox: asyncio.Queue[control_pb2.ControlMessage | None] = asyncio.Queue()
        # incarnation -> the seq of a batch that failed to apply on this stream. Later
        # batches of that incarnation are refused until it succeeds, so a lease close
        # is never applied before the usage that precedes it in the journal.
        self.failed_seq: dict[str, int] = {}

    def wants(self, version: str) -> bool:
        return version not in (self.running, self.in_flight) and version not in self.nacked


class SyncService(control_pb2_grpc.ControlPlaneServicer):
    def __init__(
        self,
        *,
        store: Store,
        source: SnapshotSource,
        metrics: ControlPlaneMetrics,
        clock: Clock,
        controlplane_id: str,
        heartbeat_interval: float,
        approvals: ApprovalFeed | None = None,
        lease_ttl_ms: int = DEFAULT_TTL_MS,
    ) -> None:
        self._store = store
        self._source = source
        self._metrics = metrics
        self._clock = clock
        self._controlplane_id = controlplane_id
        self._heartbeat_interval = heartbeat_interval
        self._lease_ttl_ms = lease_ttl_ms
        self._streams: dict[str, _Stream] = {}  # sidecar id -> its newest stream here
        self._pb_cache: tuple[str, types_pb2.Snapshot] | None = None
        if approvals is not None:
            approvals.subscribe(self._announce)

    def close(self) -> None:
        """End every open stream (on shutdown); sidecars reconnect elsewhere."""
        for stream in list(self._streams.values()):
            stream.outbox.put_nowait(_END)

    def _announce(self, approval: Approval) -> None:
        """A decision taken anywhere: every sidecar here hears it (the retry may come
        through any of them)."""
        message = control_pb2.ControlMessage(approval=decision_to_pb(approval))
        for stream in self._streams.values():
            stream.outbox.put_nowait(message)
        self._metrics.approval_decisions_pushed.inc(len(self._streams))

    async def _store_call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(function, *args)

    def _snapshot_pb(self, snapshot: Snapshot) -> types_pb2.Snapshot:
        # Converted once per version, however many streams push it.
        if self._pb_cache is None or self._pb_cache[0] != snapshot.version:
            self._pb_cache = (snapshot.version, snapshot_to_pb(snapshot))
        return self._pb_cache[1]

    async def Sync(
        self,
        request_iterator: AsyncIterator[control_pb2.SidecarMessage],
        context: grpc.aio.ServicerContext[control_pb2.SidecarMessage, control_pb2.ControlMessage],
    ) -> AsyncIterator[control_pb2.ControlMessage]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        if first.WhichOneof("kind") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "hello: must be sent first")
        hello = first.hello
        for field in ("sidecar_id", "incarnation"):
            if not getattr(hello, field):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"hello.{field}: required")
        now = self._clock.now_ms()
        await self._store_call(
            self._store.sidecar_connected, hello_from_pb(hello, self._controlplane_id), now
        )
        nacked = await self._store_call(self._store.nacked_versions, hello.sidecar_id)
        stream = _Stream(hello, nacked)
        previous = self._streams.get(stream.sidecar_id)
        if previous is not None:
            previous.outbox.put_nowait(_END)  # a sidecar has one stream; the newest wins
        self._streams[stream.sidecar_id] = stream
        self._metrics.sidecars_connected.inc()
        log.info(
            "sidecar %s (%s) connected, running %s",
            hello.sidecar_id,
            hello.service,
            hello.snapshot_version or "nothing",
        )
        tasks = [
            asyncio.create_task(self._read(stream, request_iterator)),
            asyncio.create_task(self._push(stream)),
            asyncio.create_task(self._heartbeat(stream)),
        ]
        try:
            yield control_pb2.ControlMessage(
                welcome=control_pb2.Welcome(
                    controlplane_id=self._controlplane_id,
                    heartbeat_interval_ms=round(self._heartbeat_interval * 1000),
                )
            )
            while (message := await stream.outbox.get()) is not _END:
                yield message
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._metrics.sidecars_connected.dec()
            if self._streams.get(stream.sidecar_id) is stream:
                del self._streams[stream.sidecar_id]
                # Shielded: the handler may itself be cancelled (client gone) and the
                # row must still say "disconnected".
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(
                        self._store_call(
                            self._store.sidecar_disconnected,
                            stream.sidecar_id,
                            self._controlplane_id,
                            self._clock.now_ms(),
                        )
                    )
            log.info("sidecar %s disconnected", stream.sidecar_id)

    async def _read(
        self, stream: _Stream, messages: AsyncIterator[control_pb2.SidecarMessage]
    ) -> None:
        try:
            async for message in messages:
                await self._handle(stream, message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sync stream of sidecar %s failed", stream.sidecar_id)
        finally:
            stream.outbox.put_nowait(_END)

    async def _handle(self, stream: _Stream, message: control_pb2.SidecarMessage) -> None:
        kind = message.WhichOneof("kind")
        now = self._clock.now_ms()
        if kind == "ack":
            version = message.ack.version
            stream.running = version
            if stream.in_flight == version:
                stream.in_flight = ""
            self._metrics.snapshot_acks.inc()
            await self._store_call(self._store.sidecar_acked, stream.sidecar_id, version, now)
        elif kind == "nack":
            version, reason = message.nack.version, message.nack.reason
            stream.nacked.add(version)
            if stream.in_flight == version:
                stream.in_flight = ""
            self._metrics.snapshot_nacks.inc()
            log.warning("sidecar %s rejected %s: %s", stream.sidecar_id, version, reason)
            await self._store_call(
                self._store.sidecar_nacked, stream.sidecar_id, version, reason, now
            )
        elif kind == "heartbeat":
            await self._store_call(
                self._store.sidecar_seen,
                stream.sidecar_id,
                message.heartbeat.snapshot_version,
                now,
            )
        elif kind == "usage":
            stream.outbox.put_nowait(await self._apply_usage(stream, message.usage))
        elif kind == "approval_request":
            await self._record_approval(stream, message.approval_request, now)
        elif kind == "lease_request":
            await self._grant(stream, message.lease_request, now)
        else:
            # A newer sidecar may send what this replica does not know yet; it must
            # not lose its stream for it.
            log.debug("sidecar %s sent %s; not handled", stream.sidecar_id, kind)

    def _budgets(self) -> dict[str, Budget]:
        snapshot = self._source.current()
        return {b.name: b for b in snapshot.budgets} if snapshot is not None else {}

    async def _grant(self, stream: _Stream, request: control_pb2.LeaseRequest, now: int) -> None:
        budget = self._budgets().get(request.budget)
        if budget is None:
            refusal = control_pb2.LeaseGrant(
                budget=request.budget,
                reason=f"unknown budget {request.budget!r}: not in the current configuration",
            )
            stream.outbox.put_nowait(control_pb2.ControlMessage(lease_grant=refusal))
            return
        ask = lease_ask(
            budget,
            sidecar_id=stream.sidecar_id,
            service=stream.service,
            incarnation=stream.incarnation,
            requested_nanos=request.requested_nanos,
            demand_nanos_per_s=request.demand_nanos_per_s,
            ttl_ms=self._lease_ttl_ms,
            now_ms=now,
        )
        try:
            grant: LeaseGrant = await self._store_call(self._store.grant_lease, ask)
        except Exception:
            # No answer rather than a wrong one (grants are cumulative): the sidecar
            # asks again at its next refresh.
            log.exception("lease for %s on %s failed", budget.name, stream.sidecar_id)
            return
        self._metrics.leases_granted.inc()
        self._metrics.lease_granted_nanos.inc(grant.delta_nanos)
        self._metrics.budget_remaining_nanos.labels(budget=budget.name).set(
            grant.limit_nanos - grant.committed_nanos - grant.outstanding_nanos
        )
        message = lease_grant_to_pb(
            grant,
            refresh_after_ms=max(1, grant.lease.ttl_ms // 3),
            soft_threshold_crossed=soft_threshold_crossed(budget, grant.committed_nanos),
        )
        stream.outbox.put_nowait(control_pb2.ControlMessage(lease_grant=message))

    async def _apply_usage(
        self, stream: _Stream, batch: control_pb2.UsageBatch
    ) -> control_pb2.ControlMessage:
        incarnation = batch.incarnation or stream.incarnation
        ack = control_pb2.UsageAck(incarnation=incarnation, seq=batch.seq)
        failed = stream.failed_seq.get(incarnation)
        if failed is not None and batch.seq > failed:
            self._metrics.usage_batches_failed.inc()
            ack.ok, ack.error = False, f"batch {failed} must be applied first"
            return control_pb2.ControlMessage(usage_ack=ack)
        now = self._clock.now_ms()
        try:
            records = tuple(usage_from_pb(record) for record in batch.records)
            closes = tuple(lease_close_from_pb(close) for close in batch.lease_closes)
            result = await self._store_call(
                self._store.apply_usage_batch,
                UsageBatch(
                    stream.sidecar_id,
                    incarnation,
                    batch.seq,
                    with_period_keys(records, self._budgets(), now),
                    closes,
                ),
                now,
            )
        except Exception as exc:
            # Not acknowledged: the sidecar keeps the batch and sends it again.
            log.exception(
                "usage batch %s/%d of %s failed", incarnation, batch.seq, stream.sidecar_id
            )
            self._metrics.usage_batches_failed.inc()
            stream.failed_seq[incarnation] = min(batch.seq, failed or batch.seq)
            ack.ok, ack.error = False, f"{type(exc).__name__}: {exc}"
            return control_pb2.ControlMessage(usage_ack=ack)
        if failed is not None and batch.seq == failed:
            del stream.failed_seq[incarnation]
        ack.ok, ack.duplicate = True, result.duplicate
        if result.duplicate:
            self._metrics.usage_batches_duplicate.inc()
        else:
            self._metrics.usage_batches_applied.inc()
            self._metrics.usage_records_applied.inc(result.applied)
            self._metrics.usage_late_records.inc(result.late_records)
            self._metrics.usage_late_nanos.inc(result.late_nanos)
            self._metrics.leases_closed.inc(result.closed)
        return control_pb2.ControlMessage(usage_ack=ack)

    async def _record_approval(
        self, stream: _Stream, request: control_pb2.ApprovalRequest, now: int
    ) -> None:
        if not request.approval_id:
            # Nothing to key it on; dropping it (and saying so) keeps the stream.
            log.warning("sidecar %s sent an approval request without an id", stream.sidecar_id)
            return
        ttl = governance_of(self._source.current()).approval_ttl_ms
        approval = approval_from_pb(
            request,
            sidecar_id=stream.sidecar_id,
            service=stream.service,
            now_ms=now,
            approval_ttl_ms=ttl,
        )
        stored, created = await self._store_call(self._store.add_approval, approval)
        if created:
            self._metrics.approvals_requested.inc()
            log.info(
                "approval %s requested by sidecar %s: %s for %s/%s on %s",
                approval.approval_id,
                stream.sidecar_id,
                approval.capability,
                approval.tenant or "-",
                approval.team or "-",
                approval.model,
            )
        elif stored.state is not ApprovalState.PENDING:
            # Sent again after it was decided (a resend after reconnecting): answer now.
            stream.outbox.put_nowait(control_pb2.ControlMessage(approval=decision_to_pb(stored)))

    async def _replay_approvals(self, stream: _Stream) -> None:
        try:
            replay = await self._store_call(
                self._store.approvals_to_replay, stream.sidecar_id, self._clock.now_ms()
            )
        except Exception:
            # Not fatal to the stream: new decisions still arrive through the feed.
            log.exception("could not replay approvals to sidecar %s", stream.sidecar_id)
            return
        for approval in replay:
            stream.outbox.put_nowait(control_pb2.ControlMessage(approval=decision_to_pb(approval)))
        if replay:
            log.info("replayed %d approval decision(s) to %s", len(replay), stream.sidecar_id)

    async def _push(self, stream: _Stream) -> None:
        seen = ""
        replayed = False
        while True:
            snapshot = self._source.current()
            if snapshot is not None:
                seen = snapshot.version
                if stream.wants(snapshot.version):
                    stream.in_flight = snapshot.version
                    push = control_pb2.SnapshotPush(snapshot=self._snapshot_pb(snapshot))
                    stream.outbox.put_nowait(control_pb2.ControlMessage(snapshot=push))
                    self._metrics.snapshots_pushed.inc()
                    log.info("pushed %s to sidecar %s", snapshot.version, stream.sidecar_id)
            if not replayed:
                # After the snapshot, so a sidecar starting from nothing has its
                # configuration before it hears about its approvals.
                replayed = True
                await self._replay_approvals(stream)
            await self._source.wait_for_change(seen)

    async def _heartbeat(self, stream: _Stream) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            current = self._source.current()
            beat = control_pb2.Heartbeat(
                sent_at_unix_ms=self._clock.now_ms(),
                snapshot_version=current.version if current is not None else "",
            )
            stream.outbox.put_nowait(control_pb2.ControlMessage(heartbeat=beat))
