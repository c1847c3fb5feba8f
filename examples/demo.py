"""Faregate end to end on one machine: a control plane, three sidecars, synthetic traffic.

Run with `make demo` (or `.venv/bin/python examples/demo.py --seconds 8`). It starts the
servers in a temporary directory, applies examples/faregate.yaml, drives traffic for five
capabilities through `RouterClient` (model calls are simulated: token counts, latency and
failures are drawn from a seeded RNG), then prints the control plane's ledger next to what
the same calls would have cost on the most capable model. Every process it started is
stopped, and the directory removed, however it ends. Uses only the public clients and
console scripts: it must not import `controlplane` or `sidecar`.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from processes import ProcessError, Processes, console_script, read_ready_file
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from traffic import FAILURE_RATE, PROFILES, Profile, simulated_latency_ms

from clients import AdminClient, FaregateError, RouterClient
from clients.admin_results import SpendReport
from faregate.model import Locality, Model, Sensitivity, Snapshot
from faregate.pricing import cost_nanos, format_usd

CONFIG = Path(__file__).with_name("faregate.yaml")
SERVICES = ("support-bot", "risk-engine", "legal-docs")
TENANT = "acme"
READY_TIMEOUT = 20.0
LEDGER_TIMEOUT = 6.0


@dataclass
class Tally:
    """What the client side saw: decisions, reports sent, and both sides of the comparison."""

    decisions: int = 0
    reports: int = 0
    failures: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cost_nanos: Counter[str] = field(default_factory=Counter)  # per capability, our pricing
    baseline_nanos: Counter[str] = field(default_factory=Counter)  # per capability


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


def start_controlplane(processes: Processes, tmp: Path) -> str:
    """Start the control plane on a free port with SQLite in `tmp/cp`; its Admin target."""
    data_dir = tmp / "cp"
    data_dir.mkdir()
    ready_file = data_dir / "ready.json"
    managed = processes.start(
        "controlplane",
        [
            str(console_script("faregate-controlplane")),
            *("--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"),
            *("--data-dir", str(data_dir), "--ready-file", str(ready_file)),
        ],
    )
    return str(processes.wait_ready(managed, ready_file, READY_TIMEOUT)["listen"])


def start_sidecars(
    processes: Processes, tmp: Path, cp_target: str, admin: AdminClient, version: str
) -> dict[str, str]:
    """One sidecar per service on a Unix socket, each serving `version`; Router targets."""
    started = {}
    for service in SERVICES:
        state_dir = tmp / service
        state_dir.mkdir()
        argv = [
            str(console_script("faregate-sidecar")),
            *("--controlplane", cp_target, "--service", service),
            *("--listen", f"unix://{tmp / service}.sock", "--metrics-listen", "127.0.0.1:0"),
            *("--state-dir", str(state_dir), "--ready-file", str(state_dir / "ready.json")),
        ]
        started[service] = (processes.start(service, argv), state_dir / "ready.json")
    targets = {
        service: str(processes.wait_ready(managed, ready_file, READY_TIMEOUT)["listen"])
        for service, (managed, ready_file) in started.items()
    }
    # Serving is not enough: a sidecar without a snapshot cannot route. Wait until each
    # one holds the applied version (its ready file says so, or the control plane does).
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        acked = {
            s.service
            for s in admin.list_sidecars().sidecars
            if s.connected and s.snapshot_version == version
        }
        for service, (_, ready_file) in started.items():
            if (read_ready_file(ready_file) or {}).get("snapshot_version") == version:
                acked.add(service)
        if acked >= set(SERVICES):
            return targets
        time.sleep(0.1)
    missing = ", ".join(sorted(set(SERVICES) - acked))
    raise ProcessError(f"sidecars {missing} did not receive snapshot {version} in time")


def simulate_call(
    router: RouterClient,
    profile: Profile,
    snapshot: Snapshot,
    baseline: Model,
    rng: random.Random,
    tally: Tally,
) -> None:
    """Route one request, 'call' the chosen model, report what it used."""
    prompt, cached, output = profile.draw(rng)
    try:
        decision = router.route(
            profile.capability,
            tenant=TENANT,
            team=profile.team,
            sensitivity=profile.sensitivity,
            complexity=profile.complexity,
            input_tokens=prompt,
            max_output_tokens=int(prompt * profile.output_cap_per_input_token),
            labels={"source": "demo"},
        )
    except FaregateError as error:
        tally.errors[f"{error.code.name}: {error.message}"] += 1
        return
    tally.decisions += 1
    tally.actions[decision.action.value] += 1
    if not decision.allowed:
        return
    output = min(output, decision.max_output_tokens or output)
    failed = rng.random() < FAILURE_RATE
    if failed:  # the provider errored mid-stream: the prompt is billed, little output
        output = rng.randint(0, output // 10)
        tally.failures += 1
    router.report(
        decision.decision_id,
        input_tokens=prompt,
        cached_input_tokens=cached,
        output_tokens=output,
        latency_ms=simulated_latency_ms(decision.tier, output, rng),
        outcome="failure" if failed else "success",
    )
    tally.reports += 1
    model = snapshot.models_by_name.get(decision.model)
    if model is not None:
        tally.cost_nanos[profile.capability] += cost_nanos(model.price, prompt, cached, output)
    tally.baseline_nanos[profile.capability] += cost_nanos(baseline.price, prompt, cached, output)


def drive_traffic(
    routers: dict[str, RouterClient],
    snapshot: Snapshot,
    args: argparse.Namespace,
    console: Console,
) -> Tally:
    """Weighted random traffic at about `args.rate` decisions per second for `args.seconds`."""
    rng = random.Random(args.seed)
    weights = [p.weight for p in PROFILES]
    baselines = {p.capability: baseline_model(snapshot, p.sensitivity) for p in PROFILES}
    tally = Tally()
    progress = Progress(
        TextColumn("[bold]traffic"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[decisions]:>6} decisions  {task.fields[spend]:>10} spent"),
        console=console,
    )
    with progress:
        task = progress.add_task("traffic", total=args.seconds, decisions=0, spend="$0")
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < args.seconds:
            profile = rng.choices(PROFILES, weights)[0]
            simulate_call(
                routers[profile.service],
                profile,
                snapshot,
                baselines[profile.capability],
                rng,
                tally,
            )
            ahead = (tally.decisions + sum(tally.errors.values())) / args.rate - elapsed
            if ahead > 0:
                time.sleep(min(ahead, 0.05))
            progress.update(
                task,
                completed=elapsed,
                decisions=tally.decisions,
                spend=format_usd(sum(tally.cost_nanos.values()), 4),
            )
        progress.update(task, completed=args.seconds)
    return tally


def wait_for_ledger(admin: AdminClient, expected: int, console: Console) -> SpendReport:
    """Spend by capability once the ledger holds every report (or after LEDGER_TIMEOUT)."""
    deadline = time.monotonic() + LEDGER_TIMEOUT
    with console.status("waiting for the sidecars to ship usage to the control plane..."):
        while True:
            report = admin.spend(0, "capability")
            if report.total_requests >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    if report.total_requests != expected:
        console.print(
            f"[yellow]the ledger holds {report.total_requests:,} of the {expected:,} reports "
            f"sent after {LEDGER_TIMEOUT:.0f}s[/]"
        )
    return report


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


def print_summary(
    console: Console,
    tally: Tally,
    by_capability: SpendReport,
    by_model: SpendReport,
    snapshot: Snapshot,
) -> None:
    total = by_capability.total_cost_nanos
    baseline_total = sum(tally.baseline_nanos.values())
    capabilities = [
        (
            row.key,
            f"{row.requests:,}",
            format_usd(row.cost_nanos),
            _percent(row.cost_nanos, total),
            format_usd(tally.baseline_nanos[row.key]),
            _percent(tally.baseline_nanos[row.key] - row.cost_nanos, tally.baseline_nanos[row.key]),
        )
        for row in sorted(by_capability.rows, key=lambda r: -r.cost_nanos)
    ]
    console.print(
        _table(
            "Spend per capability (control plane ledger)",
            ("capability", "requests", "cost", "share", "on the biggest model", "saved"),
            capabilities,
            total=(
                "total",
                f"{by_capability.total_requests:,}",
                format_usd(total),
                "100.0%",
                format_usd(baseline_total),
                _percent(baseline_total - total, baseline_total),
            ),
        )
    )
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
    console.print(
        _table(
            "Spend per model (control plane ledger)",
            ("model", "requests", "tokens in / out", "cost", "share"),
            models,
        )
    )
    actions = [
        (action, f"{count:,}", _percent(count, tally.decisions))
        for action, count in tally.actions.most_common()
    ]
    console.print(_table("Decisions by action", ("action", "decisions", "share"), actions))

    client_side = sum(tally.cost_nanos.values())
    check = "matches" if client_side == total else f"differs from ({format_usd(client_side)})"
    console.print(
        f"{tally.decisions:,} decisions, {tally.reports:,} reported ({tally.failures} simulated "
        f"failures); the ledger total {format_usd(total)} {check} the client-side pricing."
    )
    for error, count in tally.errors.most_common(5):
        console.print(f"[yellow]{count} route errors: {error}[/]")
    baselines = sorted({baseline_model(snapshot, p.sensitivity).name for p in PROFILES})
    console.print(
        f"[bold green]Routing saved {_percent(baseline_total - total, baseline_total)}[/]: "
        f"{format_usd(total)} instead of {format_usd(baseline_total)} had every call gone to "
        f"the most capable model its data may use ({', '.join(baselines)})."
    )


def run(args: argparse.Namespace, console: Console) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="faregate-demo-"))
    processes = Processes(tmp)
    routers: dict[str, RouterClient] = {}
    try:
        cp_target = start_controlplane(processes, tmp)
        console.print(f"control plane serving on [bold]{cp_target}[/]")
        with AdminClient(cp_target) as admin:
            applied = admin.apply_config(CONFIG.read_text(), str(CONFIG.name), author="demo")
            console.print(
                f"applied {CONFIG.name}: revision {applied.revision}, snapshot "
                f"{applied.snapshot_version}"
            )
            snapshot = admin.get_snapshot()
            targets = start_sidecars(processes, tmp, cp_target, admin, applied.snapshot_version)
            console.print(f"sidecars ready: {', '.join(targets)}")
            routers = {service: RouterClient(target) for service, target in targets.items()}
            tally = drive_traffic(routers, snapshot, args, console)
            for router in routers.values():
                router.close()  # ships the last queued reports
            by_capability = wait_for_ledger(admin, tally.reports, console)
            by_model = admin.spend(0, "model")
        print_summary(console, tally, by_capability, by_model, snapshot)
        return 0
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; stopping the servers[/]")
        return 130
    except (ProcessError, FaregateError, OSError) as error:
        console.print(f"[red]demo failed:[/] {error}")
        for managed in processes.started:
            console.print(f"[dim]{managed.name} stderr:[/]\n{managed.stderr_tail(8)}")
        return 1
    finally:
        for router in routers.values():
            router.close()
        processes.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="how long to drive traffic")
    parser.add_argument("--rate", type=float, default=200.0, help="decisions per second")
    parser.add_argument("--seed", type=int, default=7, help="seed of the traffic generator")
    sys.exit(run(parser.parse_args(), Console()))


if __name__ == "__main__":
    main()
