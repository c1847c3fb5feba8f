"""The SQL store on real SQLite and PostgreSQL databases (`database_url` fixture)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from controlplane.compiler import compile_snapshot
from controlplane.config import load_config
from controlplane.migrate import current_revision, upgrade
from controlplane.sql_store import SqlStore, public_url
from controlplane.store import SidecarHello, SpendGroup, UsageBatch
from faregate.model import Action, Outcome, Snapshot, UsageRecord

EXAMPLE_TEXT = (Path(__file__).resolve().parents[3] / "examples" / "faregate.yaml").read_text()

RECORD = UsageRecord(
    decision_id="d-1",
    service="support-bot",
    capability="classification",
    tenant="acme",
    team="support",
    model="gemini-2.0-flash",
    provider="google",
    action=Action.ALLOW,
    input_tokens=1000,
    cached_input_tokens=100,
    output_tokens=10,
    cost_nanos=100_000,
    estimated_cost_nanos=120_000,
    reserved_cost_nanos=130_000,
    price_version="gemini-2.0-flash@abc",
    config_version="v1",
    outcome=Outcome.SUCCESS,
    latency_ms=80,
    decided_at_unix_ms=10_000,
    reported_at_unix_ms=10_500,
    business_value_nanos=7,
    labels={"ticket": "T-1"},
    budgets=("acme-monthly",),
)


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(database_url)
    upgrade(opened.engine)
    try:
        yield opened
    finally:
        opened.close()


def snapshot(text: str = EXAMPLE_TEXT) -> Snapshot:
    return compile_snapshot(load_config(text), 0, 0)


def record(decision_id: str, **changes: object) -> UsageRecord:
    return dataclasses.replace(RECORD, decision_id=decision_id, **changes)  # type: ignore[arg-type]


def append(store: SqlStore, content: Snapshot, at: int = 1_000) -> int:
    result = store.append_revision(
        content, yaml_text="yaml", source_name="f.yaml", author="ana", created_at_unix_ms=at
    )
    return result.revision.revision if result.created else 0


def test_usage_batch_is_applied_once(store: SqlStore) -> None:
    batch = UsageBatch("sc-1", "inc-1", 1, (record("d-1"), record("d-2", cost_nanos=5)))
    first = store.apply_usage_batch(batch, now_ms=20_000)
    assert (first.duplicate, first.applied) == (False, 2)
    before = store.spend(SpendGroup.MODEL, None)
    again = store.apply_usage_batch(batch, now_ms=20_001)
    assert (again.duplicate, again.applied) == (True, 0)
    assert store.spend(SpendGroup.MODEL, None) == before
    assert before[0].cost_nanos == 100_005 and before[0].requests == 2
    # The same decision in another batch (e.g. a new incarnation) is not counted twice.
    other = store.apply_usage_batch(UsageBatch("sc-1", "inc-2", 1, (record("d-1"),)), 20_002)
    assert (other.duplicate, other.applied) == (False, 0)
    assert store.spend(SpendGroup.MODEL, None) == before


def test_revisions_increase_and_survive_reopening(database_url: str, store: SqlStore) -> None:
    assert store.latest_revision() is None
    first, second = snapshot(), snapshot(EXAMPLE_TEXT.replace("CC-2100", "CC-1"))
    assert append(store, first) == 1
    assert append(store, first) == 0  # same content as the latest: nothing stored
    assert append(store, second, at=2_000) == 2
    assert append(store, first, at=3_000) == 3  # going back is a new revision
    store.close()

    reopened = SqlStore.open(database_url)
    try:
        upgrade(reopened.engine)  # idempotent
        assert current_revision(reopened.engine) == "0003"
        assert [r.revision for r in reopened.list_revisions(10)] == [3, 2, 1]
        latest = reopened.latest_revision()
        assert latest is not None and latest.snapshot_version == first.version
        assert (latest.models, latest.capabilities, latest.tenants) == (8, 5, 1)
        stored = reopened.get_snapshot(2)
        assert stored is not None
        assert stored.version == second.version and stored.revision == 2
        assert stored.created_at_unix_ms == 2_000
        assert stored.models == second.models
        assert reopened.get_snapshot(4) is None
    finally:
        reopened.close()


def test_spend_grouping_and_window(store: SqlStore) -> None:
    records = (
        record("a", reported_at_unix_ms=1_000, cost_nanos=10),
        record("b", reported_at_unix_ms=2_000, cost_nanos=20, model="gpt-4o", provider="openai"),
        record("c", reported_at_unix_ms=3_000, cost_nanos=40, team="risk", service="risk-engine"),
    )
    store.apply_usage_batch(UsageBatch("sc-1", "inc-1", 1, records), now_ms=5_000)
    by_model = store.spend(SpendGroup.MODEL, None)
    assert [(r.key, r.cost_nanos, r.requests) for r in by_model] == [
        ("gemini-2.0-flash", 50, 2),
        ("gpt-4o", 20, 1),
    ]
    assert by_model[0].input_tokens == 2000 and by_model[0].business_value_nanos == 14
    assert [(r.key, r.cost_nanos) for r in store.spend(SpendGroup.TEAM, None)] == [
        ("acme/risk", 40),
        ("acme/support", 30),
    ]
    assert [r.key for r in store.spend(SpendGroup.PROVIDER, None)] == ["google", "openai"]
    assert [r.key for r in store.spend(SpendGroup.SERVICE, 2_500)] == ["risk-engine"]
    assert [(r.key, r.requests) for r in store.spend(SpendGroup.TENANT, 2_000)] == [("acme", 2)]
    assert store.spend(SpendGroup.CAPABILITY, 9_000) == []


def test_sidecar_state_nacks_and_disconnects(store: SqlStore) -> None:
    hello = SidecarHello("sc-1", "svc", "inc-1", "v0", "host-a", "cp-a")
    store.sidecar_connected(hello, 1_000)
    store.sidecar_nacked("sc-1", "v2", "unknown model", 1_100)
    store.sidecar_nacked("sc-1", "v2", "unknown model", 1_150)  # repeated NACK is fine
    store.sidecar_acked("sc-1", "v1", 1_200)
    assert store.nacked_versions("sc-1") == {"v2"}
    (info,) = store.list_sidecars()
    assert (info.connected, info.snapshot_version, info.last_nack_version) == (True, "v1", "v2")
    assert info.last_seen_unix_ms == 1_200 and info.hostname == "host-a"
    # Reconnected to another replica: the old replica's disconnect must not win.
    store.sidecar_connected(dataclasses.replace(hello, controlplane_id="cp-b"), 1_300)
    store.sidecar_disconnected("sc-1", "cp-a", 1_400)
    assert store.list_sidecars()[0].connected
    assert store.list_sidecars()[0].last_nack_reason == "unknown model"
    assert store.disconnect_all("cp-b", 1_500) == 1
    assert not store.list_sidecars()[0].connected


def test_concurrent_appends_through_two_replicas_get_distinct_ids(
    database_url: str, store: SqlStore
) -> None:
    other = SqlStore.open(database_url)
    contents = [snapshot(EXAMPLE_TEXT.replace("CC-2100", f"CC-{n}")) for n in range(8)]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            ids = list(pool.map(lambda n: append(store if n % 2 else other, contents[n]), range(8)))
    finally:
        other.close()
    assert sorted(ids) == list(range(1, 9))
    stored = {r.revision: r.snapshot_version for r in store.list_revisions(10)}
    assert sorted(stored.values()) == sorted(c.version for c in contents)


def test_logged_urls_carry_no_password() -> None:
    url = "postgresql+psycopg://fg:s3cret@db.internal:5432/faregate"
    assert public_url(url) == "postgresql+psycopg://fg@db.internal:5432/faregate"
    assert public_url("sqlite:////var/lib/fg/faregate.db") == "sqlite:////var/lib/fg/faregate.db"
