"""The Sync protocol against an in-memory store: hello, push, ACK/NACK, usage once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from controlplane.clock import FixedClock
from controlplane.compiler import compile_snapshot
from controlplane.config import load_config
from controlplane.metrics import ControlPlaneMetrics
from controlplane.sync_service import SyncService
from faregate.model import Snapshot
from faregate.v1 import control_pb2, types_pb2
from tests.unit.controlplane.fake_grpc import FakeContext
from tests.unit.controlplane.memory_store import MemoryStore

EXAMPLE_TEXT = (Path(__file__).resolve().parents[3] / "examples" / "faregate.yaml").read_text()
FIRST = compile_snapshot(load_config(EXAMPLE_TEXT), 1, 0)
SECOND = compile_snapshot(load_config(EXAMPLE_TEXT.replace("CC-2100", "CC-9")), 2, 0)
Message = control_pb2.SidecarMessage


class SettableSource:
    def __init__(self, snapshot: Snapshot | None) -> None:
        self._snapshot = snapshot
        self._changed = asyncio.Event()

    def current(self) -> Snapshot | None:
        return self._snapshot

    def set(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for_change(self, version: str) -> None:
        while (self._snapshot.version if self._snapshot else "") == version:
            await self._changed.wait()


class Sidecar:
    """Drives one Sync stream as a sidecar would."""

    def __init__(self, service: SyncService, running: str = "") -> None:
        self.inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self.inbox.put_nowait(
            Message(
                hello=control_pb2.Hello(
                    sidecar_id="sc-1", service="svc", incarnation="inc-1", snapshot_version=running
                )
            )
        )
        self.stream = service.Sync(self._requests(), FakeContext())  # type: ignore[arg-type]

    async def _requests(self) -> AsyncIterator[Message]:
        while (message := await self.inbox.get()) is not None:
            yield message

    def send(self, **kind: Any) -> None:
        self.inbox.put_nowait(Message(**kind))

    async def receive(self) -> control_pb2.ControlMessage:
        return await asyncio.wait_for(anext(self.stream), 5)

    async def hang_up(self) -> list[control_pb2.ControlMessage]:
        self.inbox.put_nowait(None)
        return [message async for message in self.stream]


def make_service(store: MemoryStore, source: SettableSource) -> SyncService:
    return SyncService(
        store=store,
        source=source,
        metrics=ControlPlaneMetrics(CollectorRegistry()),
        clock=FixedClock(1_000),
        controlplane_id="cp-test",
        heartbeat_interval=3600,
    )


def usage_batch(seq: int) -> control_pb2.UsageBatch:
    record = types_pb2.UsageRecord(decision_id=f"d{seq}", model="gpt-4o", cost_nanos=5)
    return control_pb2.UsageBatch(incarnation="inc-1", seq=seq, records=[record])


def test_hello_gets_welcome_then_the_snapshot_and_ack_is_recorded() -> None:
    async def scenario() -> None:
        store, source = MemoryStore(), SettableSource(FIRST)
        sidecar = Sidecar(make_service(store, source))
        welcome = await sidecar.receive()
        assert welcome.welcome.controlplane_id == "cp-test"
        assert welcome.welcome.heartbeat_interval_ms == 3_600_000
        push = await sidecar.receive()
        assert push.snapshot.snapshot.version == FIRST.version
        assert store.sidecars["sc-1"].connected
        sidecar.send(ack=control_pb2.SnapshotAck(version=FIRST.version))
        # A usage batch is answered in order, so the ACK before it has been handled.
        sidecar.send(usage=usage_batch(1))
        assert (await sidecar.receive()).usage_ack.ok
        assert store.sidecars["sc-1"].snapshot_version == FIRST.version
        source.set(SECOND)
        assert (await sidecar.receive()).snapshot.snapshot.version == SECOND.version
        assert await sidecar.hang_up() == []
        assert not store.sidecars["sc-1"].connected

    asyncio.run(scenario())


def test_no_push_when_the_sidecar_already_runs_the_current_version() -> None:
    async def scenario() -> None:
        store, source = MemoryStore(), SettableSource(FIRST)
        sidecar = Sidecar(make_service(store, source), running=FIRST.version)
        assert (await sidecar.receive()).HasField("welcome")
        sidecar.send(usage=usage_batch(1))
        assert (await sidecar.receive()).HasField("usage_ack")  # not a snapshot
        await sidecar.hang_up()

    asyncio.run(scenario())


def test_a_nacked_version_is_never_sent_again_even_after_reconnect() -> None:
    async def scenario() -> None:
        store, source = MemoryStore(), SettableSource(SECOND)
        service = make_service(store, source)
        sidecar = Sidecar(service, running=FIRST.version)
        await sidecar.receive()
        assert (await sidecar.receive()).snapshot.snapshot.version == SECOND.version
        sidecar.send(nack=control_pb2.SnapshotNack(version=SECOND.version, reason="bad"))
        sidecar.send(usage=usage_batch(1))
        assert (await sidecar.receive()).HasField("usage_ack")
        assert store.sidecars["sc-1"].last_nack_reason == "bad"
        await sidecar.hang_up()

        again = Sidecar(service, running=FIRST.version)
        assert (await again.receive()).HasField("welcome")
        again.send(usage=usage_batch(2))
        assert (await again.receive()).HasField("usage_ack")  # no push of SECOND
        source.set(FIRST)  # reverting to what it runs: nothing to push either
        third = compile_snapshot(load_config(EXAMPLE_TEXT.replace("CC-2100", "X")), 3, 0)
        source.set(third)
        assert (await again.receive()).snapshot.snapshot.version == third.version
        await again.hang_up()

    asyncio.run(scenario())


def test_usage_batch_is_applied_once() -> None:
    async def scenario() -> None:
        store, source = MemoryStore(), SettableSource(None)
        sidecar = Sidecar(make_service(store, source))
        await sidecar.receive()
        sidecar.send(usage=usage_batch(7))
        sidecar.send(usage=usage_batch(7))
        first, second = await sidecar.receive(), await sidecar.receive()
        assert (first.usage_ack.seq, first.usage_ack.ok, first.usage_ack.duplicate) == (
            7,
            True,
            False,
        )
        assert (second.usage_ack.ok, second.usage_ack.duplicate) == (True, True)
        assert list(store.ledger) == ["d7"]
        await sidecar.hang_up()

    asyncio.run(scenario())


class FlakyStore(MemoryStore):
    """Fails the first attempt at one batch, as a busy database would."""

    def __init__(self, failing_seq: int) -> None:
        super().__init__()
        self.failing_seq = failing_seq

    def apply_usage_batch(self, batch: Any, now_ms: int) -> Any:
        if batch.seq == self.failing_seq:
            self.failing_seq = -1
            raise RuntimeError("database is locked")
        return super().apply_usage_batch(batch, now_ms)


def test_batches_after_a_failed_one_wait_for_it() -> None:
    async def scenario() -> None:
        store, source = FlakyStore(failing_seq=1), SettableSource(None)
        sidecar = Sidecar(make_service(store, source))
        await sidecar.receive()
        sidecar.send(usage=usage_batch(1))
        sidecar.send(usage=usage_batch(2))
        failed, held = await sidecar.receive(), await sidecar.receive()
        assert not failed.usage_ack.ok and "locked" in failed.usage_ack.error
        # Batch 2 (which might close a lease) is not applied before batch 1.
        assert not held.usage_ack.ok and "batch 1" in held.usage_ack.error
        assert list(store.ledger) == []
        sidecar.send(usage=usage_batch(1))
        sidecar.send(usage=usage_batch(2))
        assert (await sidecar.receive()).usage_ack.ok
        assert (await sidecar.receive()).usage_ack.ok
        assert list(store.ledger) == ["d1", "d2"]
        await sidecar.hang_up()

    asyncio.run(scenario())
