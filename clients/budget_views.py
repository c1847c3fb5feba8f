"""What `faregate budgets` and `faregate get leases` show.

Built like every `clients.views` view (formatted cells and JSON data in one pass).
Money is shown with `faregate.pricing.format_usd` and given as integer nanos in JSON;
times are relative to `now_ms` in the table and epoch milliseconds in JSON. Pure:
takes the typed results and the current time as arguments; must not import gRPC,
click, the wire types or the servers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from clients.admin_results import BudgetStatus, LeaseInfo
from clients.durations import format_ago, format_in
from clients.views import Column, View
from faregate.pricing import format_usd


def _relative(unix_ms: int, now_ms: int) -> str:
    if unix_ms <= 0:
        return "—"
    if unix_ms <= now_ms:
        return format_ago(now_ms - unix_ms)
    return format_in(unix_ms - now_ms)


def _used(b: BudgetStatus) -> str:
    if b.limit_nanos <= 0:
        return "—"
    return f"{b.committed_nanos * 100 / b.limit_nanos:.1f}%"


def _exhaustion(b: BudgetStatus, now_ms: int) -> str:
    if b.committed_nanos >= b.limit_nanos > 0:
        return "exhausted"
    if b.projected_exhaustion_unix_ms <= 0:
        return "not this period" if b.burn_rate_nanos_per_hour else "—"
    return _relative(b.projected_exhaustion_unix_ms, now_ms)


def budgets_view(budgets: Sequence[BudgetStatus], now_ms: int) -> View:
    """Budgets in their current period; those past a soft threshold are highlighted."""
    columns = (
        Column("budget"),
        Column("period"),
        Column("scope"),
        Column("limit", numeric=True),
        Column("committed", numeric=True),
        Column("used", numeric=True),
        Column("outstanding", numeric=True),
        Column("remaining", numeric=True),
        Column("burn/h", numeric=True),
        Column("exhausted", numeric=True),
        Column("leases", numeric=True),
    )
    rows, warned, notes = [], set(), []
    for index, b in enumerate(budgets):
        if b.soft_threshold_crossed or b.committed_nanos >= b.limit_nanos:
            warned.add(index)
        if b.late_nanos or b.forfeited_nanos:
            notes.append(
                f"{b.name}: {format_usd(b.late_nanos)} late, "
                f"{format_usd(b.forfeited_nanos)} forfeited"
            )
        rows.append(
            (
                b.name,
                b.period_key,
                b.scope or "all",
                format_usd(b.limit_nanos, 2),
                format_usd(b.committed_nanos),
                _used(b),
                format_usd(b.outstanding_nanos),
                format_usd(b.remaining_nanos),
                format_usd(b.burn_rate_nanos_per_hour),
                _exhaustion(b, now_ms),
                str(b.open_leases),
            )
        )
    data: list[dict[str, Any]] = [dataclasses.asdict(b) for b in budgets]
    caption = "; ".join(notes)
    if warned:
        marker = "highlighted: past a soft threshold or exhausted"
        caption = f"{caption}; {marker}" if caption else marker
    return View(
        "Budgets (current period)",
        columns,
        rows,
        data,
        highlight=frozenset(warned),
        caption=caption,
    )


def leases_view(leases: Sequence[LeaseInfo], now_ms: int, *, include_closed: bool) -> View:
    """Leases by budget and sidecar: granted, applied through the ledger, held, expiry."""
    columns = (
        Column("budget"),
        Column("period"),
        Column("sidecar"),
        Column("service"),
        Column("state"),
        Column("granted", numeric=True),
        Column("applied", numeric=True),
        Column("held", numeric=True),
        Column("expires", numeric=True),
    )
    rows = [
        (
            lease.budget,
            lease.period_key,
            lease.sidecar_id,
            lease.service or "—",
            lease.state,
            format_usd(lease.granted_nanos),
            format_usd(lease.applied_nanos),
            format_usd(lease.held_nanos),
            _relative(lease.expires_at_unix_ms, now_ms) if lease.state == "open" else "—",
        )
        for lease in leases
    ]
    title = "Leases" if include_closed else "Open leases"
    return View(title, columns, rows, [dataclasses.asdict(lease) for lease in leases])
