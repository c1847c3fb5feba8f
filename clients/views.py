"""What the CLI shows: each Admin answer as a `View`, rendered as a rich table or as JSON.

A view carries the formatted cells for humans and plain data (integer nanos, epoch
milliseconds) for `--output json`, built in one pass so the two never disagree. Pure:
takes the typed results and the current time as arguments; must not import gRPC,
click, the wire types or the servers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rich.table import Table

from clients.admin_results import ApplyResult, RevisionInfo, SidecarList, SpendReport
from clients.durations import format_ago, format_window
from faregate.model import Snapshot
from faregate.pricing import NANOS_PER_USD, format_usd


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    numeric: bool = False  # right-aligned


@dataclass(frozen=True, slots=True)
class View:
    title: str
    columns: tuple[Column, ...]
    rows: Sequence[tuple[str, ...]]
    data: Any  # what `--output json` prints
    total: tuple[str, ...] | None = None
    highlight: frozenset[int] = frozenset()  # row indexes to mark, e.g. stale sidecars
    caption: str = ""


def render(view: View) -> Table:
    table = Table(title=view.title, caption=view.caption or None, show_footer=False)
    for column in view.columns:
        table.add_column(column.header, justify="right" if column.numeric else "left")
    for index, row in enumerate(view.rows):
        table.add_row(*row, style="yellow" if index in view.highlight else None)
    if view.total is not None:
        table.add_section()
        table.add_row(*view.total, style="bold")
    return table


def format_rate(nanos_per_mtok: int) -> str:
    """A price per million tokens, exact: `$3.00`, `$0.075`, `$0.625`."""
    usd = Decimal(nanos_per_mtok) / NANOS_PER_USD
    text = f"{usd:.9f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def format_when(unix_ms: int) -> str:
    if unix_ms <= 0:
        return "—"
    return datetime.fromtimestamp(unix_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def plural(count: int, noun: str, nouns: str = "") -> str:
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def models_view(snapshot: Snapshot) -> View:
    columns = tuple(
        Column(h, numeric=h.startswith(("context", "$")))
        for h in (
            "model",
            "provider",
            "tier",
            "locality",
            "compliance",
            "context",
            "$ in/Mtok",
            "$ cached/Mtok",
            "$ out/Mtok",
        )
    )
    rows, data = [], []
    for m in snapshot.models:
        price = m.price
        name = m.name + (" (unavailable)" if m.unavailable else "")
        tiered = " +tiers" if price.tiers else ""
        rows.append(
            (
                name,
                m.provider,
                m.tier,
                m.locality.value,
                ", ".join(m.compliance_tags) or "—",
                f"{m.context_window:,}",
                format_rate(price.input_nanos_per_mtok) + tiered,
                format_rate(price.cached_input_nanos_per_mtok),
                format_rate(price.output_nanos_per_mtok),
            )
        )
        data.append(
            {
                "name": m.name,
                "provider": m.provider,
                "tier": m.tier,
                "locality": m.locality.value,
                "compliance_tags": list(m.compliance_tags),
                "context_window": m.context_window,
                "max_output_tokens": m.max_output_tokens,
                "input_nanos_per_mtok": price.input_nanos_per_mtok,
                "cached_input_nanos_per_mtok": price.cached_input_nanos_per_mtok,
                "output_nanos_per_mtok": price.output_nanos_per_mtok,
                "price_tiers": [
                    {
                        "min_input_tokens": t.min_input_tokens,
                        "input_nanos_per_mtok": t.input_nanos_per_mtok,
                        "cached_input_nanos_per_mtok": t.cached_input_nanos_per_mtok,
                        "output_nanos_per_mtok": t.output_nanos_per_mtok,
                    }
                    for t in price.tiers
                ],
                "unavailable": m.unavailable,
            }
        )
    title = f"Models (snapshot {snapshot.version}, revision {snapshot.revision})"
    return View(title, columns, rows, data)


def capabilities_view(snapshot: Snapshot) -> View:
    columns = (
        Column("capability"),
        Column("default max out", numeric=True),
        Column("candidates"),
        Column("strategy"),
    )
    rows, data = [], []
    for c in snapshot.capabilities:
        rows.append(
            (
                c.name,
                f"{c.default_max_output_tokens:,}",
                ", ".join(c.candidates),
                c.routing.strategy,
            )
        )
        data.append(
            {
                "name": c.name,
                "description": c.description,
                "default_max_output_tokens": c.default_max_output_tokens,
                "candidates": list(c.candidates),
                "strategy": c.routing.strategy,
                "quality_floor": c.routing.quality_floor,
                "downgrade_chain": list(c.routing.downgrade_chain),
            }
        )
    return View(f"Capabilities (snapshot {snapshot.version})", columns, rows, data)


def tenants_view(snapshot: Snapshot) -> View:
    columns = (Column("tenant"), Column("team"), Column("cost centre"))
    rows: list[tuple[str, ...]] = []
    data = []
    for tenant in snapshot.tenants:
        if not tenant.teams:
            rows.append((tenant.name, "—", "—"))
        for team in tenant.teams:
            rows.append((tenant.name, team.name, team.cost_center or "—"))
        data.append(
            {
                "name": tenant.name,
                "teams": [{"name": t.name, "cost_center": t.cost_center} for t in tenant.teams],
            }
        )
    return View(f"Tenants (snapshot {snapshot.version})", columns, rows, data)


def sidecars_view(listing: SidecarList, now_ms: int) -> View:
    columns = (
        Column("sidecar"),
        Column("service"),
        Column("connected"),
        Column("version"),
        Column("last nack"),
        Column("last seen", numeric=True),
    )
    rows, data, stale = [], [], set()
    for index, s in enumerate(listing.sidecars):
        behind = s.snapshot_version != listing.current_version
        if behind:
            stale.add(index)
        nack = f"{s.last_nack_version}: {s.last_nack_reason}" if s.last_nack_version else "—"
        seen = format_ago(max(0, now_ms - s.last_seen_unix_ms)) if s.last_seen_unix_ms else "never"
        rows.append(
            (
                s.sidecar_id,
                s.service,
                "yes" if s.connected else "no",
                (s.snapshot_version or "(none)") + (" ← not current" if behind else ""),
                nack,
                seen,
            )
        )
        data.append(
            {
                "sidecar_id": s.sidecar_id,
                "service": s.service,
                "connected": s.connected,
                "snapshot_version": s.snapshot_version,
                "current": not behind,
                "last_nack_version": s.last_nack_version,
                "last_nack_reason": s.last_nack_reason,
                "last_seen_unix_ms": s.last_seen_unix_ms,
                "incarnation": s.incarnation,
                "hostname": s.hostname,
                "controlplane_id": s.controlplane_id,
            }
        )
    current = listing.current_version or "(none)"
    caption = f"{len(stale)} of {len(rows)} not on the current version" if stale else ""
    return View(
        f"Sidecars (current version {current})",
        columns,
        rows,
        {"current_version": listing.current_version, "sidecars": data},
        highlight=frozenset(stale),
        caption=caption,
    )


def revisions_view(revisions: Sequence[RevisionInfo]) -> View:
    columns = (
        Column("revision", numeric=True),
        Column("version"),
        Column("when"),
        Column("author"),
        Column("source"),
        Column("contents"),
    )
    rows, data = [], []
    for r in revisions:
        contents = ", ".join(
            (
                plural(r.models, "model"),
                plural(r.capabilities, "capability", "capabilities"),
                plural(r.tenants, "tenant"),
            )
        )
        rows.append(
            (
                str(r.revision),
                r.snapshot_version,
                format_when(r.created_at_unix_ms),
                r.author or "—",
                r.source_name or "—",
                contents,
            )
        )
        data.append(
            {
                "revision": r.revision,
                "snapshot_version": r.snapshot_version,
                "created_at_unix_ms": r.created_at_unix_ms,
                "author": r.author,
                "source_name": r.source_name,
                "models": r.models,
                "capabilities": r.capabilities,
                "tenants": r.tenants,
            }
        )
    return View("Configuration revisions", columns, rows, data)


def _share(part: int, whole: int) -> str:
    return f"{part * 100 / whole:.1f}%" if whole else "—"


def _per_thousand(cost_nanos: int, requests: int) -> str:
    return format_usd(cost_nanos * 1000 // requests) if requests else "—"


def spend_view(report: SpendReport) -> View:
    """Spend per group, most expensive first, with each group's share and unit cost."""
    group = report.group_by or "group"
    columns = (
        Column(group),
        Column("cost (USD)", numeric=True),
        Column("requests", numeric=True),
        Column("tokens", numeric=True),
        Column("share", numeric=True),
        Column("per 1k requests", numeric=True),
    )
    ordered = sorted(report.rows, key=lambda r: (-r.cost_nanos, r.key))
    total_tokens = sum(r.tokens for r in ordered)
    rows = [
        (
            r.key or "(none)",
            format_usd(r.cost_nanos),
            f"{r.requests:,}",
            f"{r.tokens:,}",
            _share(r.cost_nanos, report.total_cost_nanos),
            _per_thousand(r.cost_nanos, r.requests),
        )
        for r in ordered
    ]
    total = (
        "total",
        format_usd(report.total_cost_nanos),
        f"{report.total_requests:,}",
        f"{total_tokens:,}",
        "100.0%" if report.total_cost_nanos else "—",
        _per_thousand(report.total_cost_nanos, report.total_requests),
    )
    data = {
        "group_by": report.group_by,
        "window_ms": report.window_ms,
        "total_cost_nanos": report.total_cost_nanos,
        "total_cost_usd": str(Decimal(report.total_cost_nanos) / NANOS_PER_USD),
        "total_requests": report.total_requests,
        "rows": [
            {
                "key": r.key,
                "cost_nanos": r.cost_nanos,
                "cost_usd": str(Decimal(r.cost_nanos) / NANOS_PER_USD),
                "requests": r.requests,
                "input_tokens": r.input_tokens,
                "cached_input_tokens": r.cached_input_tokens,
                "output_tokens": r.output_tokens,
                "business_value_nanos": r.business_value_nanos,
            }
            for r in ordered
        ],
    }
    title = f"Spend by {group}, {format_window(report.window_ms)}"
    if report.window_ms:
        title = f"Spend by {group}, last {format_window(report.window_ms)}"
    return View(title, columns, rows, data, total=total)


def apply_view(result: ApplyResult) -> View:
    columns = (Column("change"), Column("kind"), Column("name"), Column("detail"))
    marks = {"add": "+ add", "change": "~ change", "remove": "- remove"}
    rows = [(marks.get(c.op, c.op), c.kind, c.name, c.detail) for c in result.changes]
    data = {
        "revision": result.revision,
        "snapshot_version": result.snapshot_version,
        "unchanged": result.unchanged,
        "dry_run": result.dry_run,
        "changes": [
            {"kind": c.kind, "name": c.name, "op": c.op, "detail": c.detail} for c in result.changes
        ],
    }
    title = "Changes (dry run)" if result.dry_run else "Changes"
    return View(title, columns, rows, data)


def apply_summary(result: ApplyResult) -> str:
    if result.unchanged:
        return f"Unchanged: the current configuration is already {result.snapshot_version}."
    count = plural(len(result.changes), "change")
    if result.dry_run:
        return (
            f"Dry run: {count}, would publish snapshot {result.snapshot_version}; "
            "nothing was stored."
        )
    return f"Applied revision {result.revision}: {count}, snapshot {result.snapshot_version}."
