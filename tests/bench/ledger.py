"""Benchmark: usage ingestion into the control plane's ledger, in records per second.

Calls `controlplane.sql_store.SqlStore.apply_usage_batch` directly (no gRPC) with
batches of 500 synthetic `UsageRecord`s, each batch one transaction as the Sync
service applies it, on:

- SQLite, a fresh file in a temporary directory (WAL, as the store configures it);
- PostgreSQL at `$FAREGATE_TEST_POSTGRES_URL` (default
  `postgresql+psycopg://postgres@127.0.0.1:5432/test`), in a fresh database
  `fg_bench_<random>` created over an AUTOCOMMIT connection and dropped afterwards;
  skipped, with the reason printed, when the server cannot be reached.

Records are built before the clock starts, so only the store is timed. With
`profile`, each backend's batches also run under cProfile and the top functions by
own time are added to the notes.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from controlplane.migrate import upgrade
from controlplane.sql_store import SqlStore, public_url
from controlplane.store import UsageBatch
from faregate.model import Action, Outcome, UsageRecord
from tests.bench.report import Section
from tests.bench.stats import Latency, rate

POSTGRES_ENV = "FAREGATE_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_RECORDS_PER_S = 20_000
BATCH_SIZE = 500
NOW_MS = 1_750_000_000_000


@dataclass(frozen=True, slots=True)
class Options:
    batches: int = 30  # timed batches per backend
    warmup: int = 2
    profile: bool = False
    postgres_url: str = os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL


def usage_batches(count: int, sidecar_id: str) -> list[UsageBatch]:
    """`count` batches of distinct decisions, shaped like a busy sidecar's usage."""
    capabilities = ("classification", "sentiment", "summarization", "translation")
    models = (("gpt-4o-mini", "openai"), ("llama-3.1-8b-local", "local"), ("gpt-4o", "openai"))
    batches = []
    for seq in range(1, count + 1):
        records = []
        for i in range(BATCH_SIZE):
            model, provider = models[i % len(models)]
            records.append(
                UsageRecord(
                    decision_id=uuid.uuid4().hex,
                    service="support-bot",
                    capability=capabilities[i % len(capabilities)],
                    tenant="acme",
                    team=("support", "legal", "risk")[i % 3],
                    model=model,
                    provider=provider,
                    action=Action.ALLOW,
                    input_tokens=1_000 + i,
                    cached_input_tokens=i % 200,
                    output_tokens=200 + i % 300,
                    cost_nanos=123_456 + i,
                    estimated_cost_nanos=234_567,
                    reserved_cost_nanos=0,
                    price_version="p-1",
                    config_version="v0123456789abcdef",
                    outcome=Outcome.SUCCESS,
                    latency_ms=900,
                    decided_at_unix_ms=NOW_MS - 5_000 + i,
                    reported_at_unix_ms=NOW_MS + i,
                    labels={"feature": "chat"},
                    trace_id=f"trace-{seq}-{i}",
                )
            )
        batches.append(UsageBatch(sidecar_id, "bench-incarnation", seq, tuple(records)))
    return batches


def _hotspots(profile: cProfile.Profile, top: int = 12) -> str:
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return "\n    ".join(lines[header:])


def _ingest(section: Section, backend: str, url: str, options: Options) -> None:
    store = SqlStore.open(url)
    try:
        upgrade(store.engine)
        batches = usage_batches(options.warmup + options.batches, f"bench-{backend}")
        for batch in batches[: options.warmup]:
            store.apply_usage_batch(batch, NOW_MS)
        timed = batches[options.warmup :]
        per_batch: list[int] = []
        profile = cProfile.Profile() if options.profile else None
        began = time.perf_counter_ns()
        for batch in timed:
            start = time.perf_counter_ns()
            if profile is not None:
                result = profile.runcall(store.apply_usage_batch, batch, NOW_MS)
            else:
                result = store.apply_usage_batch(batch, NOW_MS)
            per_batch.append(time.perf_counter_ns() - start)
            if result.applied != len(batch.records):
                raise RuntimeError(f"{backend}: applied {result.applied} of {len(batch.records)}")
        total_ns = time.perf_counter_ns() - began
    finally:
        store.close()
    records = options.batches * BATCH_SIZE
    overall = section.add(
        f"{backend}.records_per_s", f"{backend}: records/s", rate(records, total_ns), "records/s"
    )
    batch_latency = Latency.of_nanos(per_batch)
    section.add(
        f"{backend}.batch_median_ms",
        f"{backend}: batch of 500, median",
        batch_latency.median_us / 1e3,
        "ms",
    )
    section.add(
        f"{backend}.batch_p90_ms", f"{backend}: batch of 500, p90", batch_latency.p90_us / 1e3, "ms"
    )
    section.target(
        f"{backend} >= {TARGET_RECORDS_PER_S:,} records/s",
        overall,
        overall.value >= TARGET_RECORDS_PER_S,
    )
    if profile is not None:
        section.note(
            f"{backend} hotspots (cProfile inflates Python-heavy code):\n    {_hotspots(profile)}"
        )


class PostgresUnavailable(RuntimeError):
    """No database could be created: the server is unreachable or refuses."""


@contextlib.contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of `admin_url`; dropped on exit."""
    url = sa.make_url(admin_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"fg_bench_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(
        url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        try:
            with engine.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except sa.exc.DBAPIError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            raise PostgresUnavailable(f"{public_url(admin_url)}: {reason}") from error
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def run(options: Options = Options()) -> Section:
    section = Section("ledger", "Usage ingestion into the ledger (SqlStore.apply_usage_batch)")
    with tempfile.TemporaryDirectory(prefix="fg-bench-") as tmp:
        _ingest(section, "sqlite", f"sqlite:///{Path(tmp) / 'ledger.db'}", options)
    try:
        with fresh_postgres_database(options.postgres_url) as url:
            _ingest(section, "postgresql", url, options)
    except PostgresUnavailable as error:
        section.note(f"PostgreSQL skipped, cannot create a database on {error}; set {POSTGRES_ENV}")
    section.note(
        f"{options.batches} timed batches of {BATCH_SIZE} per backend after {options.warmup} "
        "warm-up; records/s is over all timed batches"
    )
    return section
