"""The Admin service against an in-memory store: apply, dry run, unchanged, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from prometheus_client import CollectorRegistry

from controlplane.admin_service import AdminService, problems_details
from controlplane.clock import FixedClock
from controlplane.metrics import ControlPlaneMetrics
from faregate.model import Snapshot
from faregate.v1 import admin_pb2
from tests.unit.controlplane.fake_grpc import Aborted, FakeContext
from tests.unit.controlplane.memory_store import MemoryStore

EXAMPLE_TEXT = (Path(__file__).resolve().parents[3] / "examples" / "faregate.yaml").read_text()
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


class NoSource:
    def current(self) -> Snapshot | None:
        return None

    async def wait_for_change(self, version: str) -> None:
        await asyncio.Event().wait()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def pokes() -> list[int]:
    return []


@pytest.fixture
def admin(store: MemoryStore, pokes: list[int]) -> AdminService:
    return AdminService(
        store=store,
        source=NoSource(),
        metrics=ControlPlaneMetrics(CollectorRegistry()),
        clock=FixedClock(1_700_000_000_000),
        on_applied=lambda: pokes.append(1),
    )


def apply(admin: AdminService, text: str, **fields: Any) -> admin_pb2.ApplyConfigResponse:
    request = admin_pb2.ApplyConfigRequest(yaml=text, source_name="faregate.yaml", **fields)
    return run(admin.ApplyConfig(request, FakeContext()))  # type: ignore[arg-type]


def test_apply_stores_a_revision_and_pokes_the_watcher(
    admin: AdminService, store: MemoryStore, pokes: list[int]
) -> None:
    response = apply(admin, EXAMPLE_TEXT, author="ana")
    assert response.revision == 1 and not response.unchanged and not response.dry_run
    assert response.snapshot_version == store.revisions[0][1].version
    assert {c.op for c in response.changes} == {"add"}
    assert pokes == [1]
    assert store.revisions[0][0].author == "ana"


def test_identical_content_is_unchanged(
    admin: AdminService, store: MemoryStore, pokes: list[int]
) -> None:
    first = apply(admin, EXAMPLE_TEXT)
    again = apply(admin, "# a comment changes nothing\n" + EXAMPLE_TEXT)
    assert again.unchanged and again.revision == 0
    assert again.snapshot_version == first.snapshot_version
    assert len(store.revisions) == 1 and pokes == [1]


def test_dry_run_reports_changes_and_stores_nothing(
    admin: AdminService, store: MemoryStore
) -> None:
    apply(admin, EXAMPLE_TEXT)
    response = apply(admin, EXAMPLE_TEXT.replace("output: 0.60}", "output: 0.70}"), dry_run=True)
    assert response.dry_run and response.revision == 0 and not response.unchanged
    assert [(c.kind, c.name, c.op) for c in response.changes] == [
        ("model", "gpt-4o-mini", "change")
    ]
    assert len(store.revisions) == 1


def test_invalid_file_is_rejected_whole_with_every_line(
    admin: AdminService, store: MemoryStore
) -> None:
    broken = EXAMPLE_TEXT.replace("price: {input: 0.15,", "price: {input: -0.15,").replace(
        # A list no downgrade chain refers to, so the unknown model is the one problem.
        "candidates: [gemini-2.0-flash, gpt-4o-mini, llama-3.1-8b-local, claude-3.5-haiku]",
        "candidates: [gemini-2.0-flash, gpt-4o-mini, llama-3.1-8b-local, claude-9]",
    )
    with pytest.raises(Aborted) as raised:
        apply(admin, broken)
    assert raised.value.code is grpc.StatusCode.INVALID_ARGUMENT
    lines = raised.value.details.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("faregate.yaml:") and "price.input: must not be negative" in lines[0]
    assert "unknown model 'claude-9'" in lines[1]
    assert store.revisions == []


def test_long_problem_lists_fit_in_a_status() -> None:
    lines = tuple(f"f.yaml:{n}: models[{n}].name: required" for n in range(1000))
    details = problems_details(lines)
    assert len(details.encode()) < 8000
    assert details.splitlines()[-1].endswith("more problems")


def test_get_snapshot_and_revisions(admin: AdminService) -> None:
    context: Any = FakeContext()
    with pytest.raises(Aborted) as raised:
        run(admin.GetSnapshot(admin_pb2.GetSnapshotRequest(), context))
    assert raised.value.code is grpc.StatusCode.NOT_FOUND
    apply(admin, EXAMPLE_TEXT)
    apply(admin, EXAMPLE_TEXT.replace("CC-2100", "CC-2101"))
    current = run(admin.GetSnapshot(admin_pb2.GetSnapshotRequest(), context))
    first = run(admin.GetSnapshot(admin_pb2.GetSnapshotRequest(revision=1), context))
    assert current.revision == 2 and first.revision == 1 and current.version != first.version
    with pytest.raises(Aborted) as raised:
        run(admin.GetSnapshot(admin_pb2.GetSnapshotRequest(revision=3), context))
    assert raised.value.code is grpc.StatusCode.NOT_FOUND
    listed = run(admin.ListRevisions(admin_pb2.ListRevisionsRequest(), context))
    assert [r.revision for r in listed.revisions] == [2, 1]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [({"group_by": "planet"}, "group_by"), ({"window_ms": -1}, "window_ms")],
)
def test_spend_rejects_bad_input_naming_the_field(
    admin: AdminService, request_fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(Aborted) as raised:
        run(admin.GetSpend(admin_pb2.SpendRequest(**request_fields), FakeContext()))  # type: ignore[arg-type]
    assert raised.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details.startswith(f"{field}:")
