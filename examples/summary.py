"""What the demo saw, and the tables it prints at the end.

`Tally` is what the client side counted: every decision by action and by rule, the
retries the simulated services made (after THROTTLE, and while an approval was
pending), and both sides of the cost comparison. `print_summary` sets it next to
the control plane's ledger. Uses only the public clients and `faregate`: must not
import `controlplane` or `sidecar`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from clients import RouteResult
from clients.admin_results import SpendReport
from faregate.model import Action, Locality, Model, Sensitivity, Snapshot
from faregate.pricing import format_usd


@dataclass
class Tally:
    """What the client side saw: decisions, retries, reports, both sides of the comparison."""

    requests: int = 0  # distinct requests the services made (a retry is not one)
    decisions: int = 0  # every Route answer, retries included
    reports: int = 0
    failures: int = 0
    actions: Counter[Action] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    rule_actions: Counter[tuple[str, Action]] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)  # "throttle" | "approval"
    approvals_requested: int = 0
    approvals_used: int = 0  # calls that ran on a granted approval
    approvals_refused: int = 0  # retries the operator's denial turned into DENY
    gave_up: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cost_nanos: Counter[str] = field(default_factory=Counter)  # per capability, our pricing
    baseline_nanos: Counter[str] = field(default_factory=Counter)  # per capability

    def record(self, decision: RouteResult) -> None:
        self.decisions += 1
        self.actions[decision.action] += 1
        # A rule is counted once per decision, even when it fired twice in it.
        for rule in {fired.rule for fired in decision.rules}:
            self.rules[rule] += 1
            self.rule_actions[rule, decision.action] += 1


def may_carry(model: Model, sensitivity: Sensitivity) -> bool:
    """The contract's data-sensitivity rule (docs/architecture.md)."""
    if sensitivity is Sensitivity.CONFIDENTIAL:
        return model.locality is Locality.LOCAL or "confidential" in model.compliance_tags
    if sensitivity is Sensitivity.REGULATED:
        return model.locality is Locality.LOCAL or "regulated" in model.compliance_tags
    return True


def baseline_model(snapshot: Snapshot, sensitivity: Sensitivity) -> Model:
    """The single most capable model this data may go to: the priciest-output `large` one."""
    allowed = [m for m in snapshot.models if not m.unavailable and may_carry(m, sensitivity)]
    large = [m for m in allowed if m.tier == "large"] or allowed
    return max(large, key=lambda m: (m.price.output_nanos_per_mtok, m.name))


def _percent(part: int, whole: int) -> str:
    return f"{part * 100 / whole:.1f}%" if whole else "—"


def _table(
    title: str,
    headers: tuple[str, ...],
    rows: Sequence[tuple[str, ...]],
    total: tuple[str, ...] = (),
) -> Table:
    table = Table(title=title)
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    if total:
        table.add_section()
        table.add_row(*total, style="bold")
    return table


def _spend_tables(tally: Tally, by_capability: SpendReport, by_model: SpendReport) -> list[Table]:
    # "saved" sets each call's cost against the same call's tokens on the baseline model,
    # both priced here; once the ledger holds every report (checked below) its costs match.
    total = sum(tally.cost_nanos.values())
    baseline_total = sum(tally.baseline_nanos.values())
    requests = {row.key: row.requests for row in by_capability.rows}
    ledger = {row.key: row.cost_nanos for row in by_capability.rows}
    keys = sorted(ledger.keys() | tally.baseline_nanos.keys(), key=lambda k: -ledger.get(k, 0))
    capabilities = [
        (
            key,
            f"{requests.get(key, 0):,}",
            format_usd(ledger.get(key, 0)),
            _percent(ledger.get(key, 0), by_capability.total_cost_nanos),
            format_usd(tally.baseline_nanos[key]),
            _percent(tally.baseline_nanos[key] - tally.cost_nanos[key], tally.baseline_nanos[key]),
        )
        for key in keys
    ]
    models = [
        (
            row.key,
            f"{row.requests:,}",
            f"{row.input_tokens:,} / {row.output_tokens:,}",
            format_usd(row.cost_nanos),
            _percent(row.cost_nanos, by_model.total_cost_nanos),
        )
        for row in sorted(by_model.rows, key=lambda r: -r.cost_nanos)
    ]
    return [
        _table(
            "Spend per capability (control plane ledger)",
            ("capability", "requests", "cost", "share", "on the biggest model", "saved"),
            capabilities,
            total=(
                "total",
                f"{by_capability.total_requests:,}",
                format_usd(by_capability.total_cost_nanos),
                "100.0%",
                format_usd(baseline_total),
                _percent(baseline_total - total, baseline_total),
            ),
        ),
        _table(
            "Spend per model (control plane ledger)",
            ("model", "requests", "tokens in / out", "cost", "share"),
            models,
        ),
    ]


def _decision_tables(tally: Tally) -> list[Table]:
    actions = [
        (
            action.value.upper(),
            f"{tally.actions[action]:,}",
            _percent(tally.actions[action], tally.decisions),
        )
        for action in Action
    ]
    # Full rule names are the point of this table: they never wrap, the actions do.
    rules = Table(title="Decisions by rule (a decision may fire several)")
    rules.add_column("rule", no_wrap=True)
    rules.add_column("decisions", justify="right")
    rules.add_column("resulting actions")
    for rule, count in sorted(tally.rules.items(), key=lambda item: (-item[1], item[0])):
        resulting = ", ".join(
            f"{action.value.upper()} {tally.rule_actions[rule, action]:,}"
            for action in Action
            if tally.rule_actions[rule, action]
        )
        rules.add_row(rule, f"{count:,}", resulting)
    return [
        _table(
            "Decisions by action",
            ("action", "decisions", "share"),
            actions,
            total=("total", f"{tally.decisions:,}", "100.0%"),
        ),
        rules,
    ]


def print_summary(
    console: Console,
    tally: Tally,
    by_capability: SpendReport,
    by_model: SpendReport,
    baselines: Iterable[Model],
    approved: int,
    denied: int,
) -> None:
    """The ledger's spend next to the biggest-model baseline, then the decisions.

    `approved` and `denied` are the operator's verdicts, `baselines` the models the
    comparison priced calls on."""
    for table in (*_spend_tables(tally, by_capability, by_model), *_decision_tables(tally)):
        console.print(table)
    ledger_total = by_capability.total_cost_nanos
    total = sum(tally.cost_nanos.values())
    baseline_total = sum(tally.baseline_nanos.values())
    check = "matches" if total == ledger_total else f"differs from ({format_usd(total)})"
    console.print(
        f"{tally.requests:,} requests, {tally.decisions:,} decisions "
        f"({tally.retries['throttle']:,} retries after THROTTLE, "
        f"{tally.retries['approval']:,} with an approval id), {tally.reports:,} reported "
        f"({tally.failures} simulated failures); the ledger total {format_usd(ledger_total)} "
        f"{check} the client-side pricing."
    )
    if total != ledger_total:
        console.print(
            "[yellow]The ledger does not hold every report: savings below use the client-side "
            "pricing of the reported calls.[/]"
        )
    console.print(
        f"Approvals: {tally.approvals_requested:,} requested, {approved:,} approved and "
        f"{denied:,} denied by the operator; {tally.approvals_used:,} calls ran on a granted "
        f"approval, {tally.approvals_refused:,} retries were refused by a denial."
    )
    if tally.gave_up:
        given_up = ", ".join(f"{count:,} {why}" for why, count in tally.gave_up.most_common())
        console.print(f"[yellow]Given up: {given_up}.[/]")
    for error, count in tally.errors.most_common(5):
        console.print(f"[yellow]{count} errors: {error}[/]")
    names = ", ".join(sorted({m.name for m in baselines}))
    console.print(
        f"[bold green]Routing saved {_percent(baseline_total - total, baseline_total)}[/]: "
        f"{format_usd(total)} instead of {format_usd(baseline_total)} had every call gone to "
        f"the most capable model its data may use ({names}), with the same tokens."
    )
