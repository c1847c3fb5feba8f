"""Faregate end to end on one machine: a control plane, three sidecars, synthetic traffic.

Run with `make demo` (or `.venv/bin/python examples/demo.py --seconds 8`). It starts the
servers in a temporary directory, applies examples/faregate.yaml, drives traffic for five
capabilities through `RouterClient` (model calls are simulated: token counts, latency and
failures are drawn from a seeded RNG) and plays by the decisions: a THROTTLE is retried
after its `retry_after_ms`, an APPROVAL_REQUIRED waits for the operator (`approver.py`,
approving most requests through the Admin API) and is retried with its approval id, a DENY
is final. Then it prints the control plane's ledger next to what the same calls would have
cost on the most capable model, and the decisions by action and by rule (`summary.py`).
Every process it started is stopped, and the directory removed, however it ends. Uses only
the public clients and console scripts: it must not import `controlplane` or `sidecar`.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from approver import Approver
from processes import ProcessError, Processes, console_script, read_ready_file
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from summary import Tally, baseline_model, print_summary
from traffic import FAILURE_RATE, PROFILES, Profile, Tokens, simulated_latency_ms

from clients import AdminClient, FaregateError, RouterClient, RouteResult
from clients.admin_results import SpendReport
from faregate.model import Action, Snapshot
from faregate.pricing import cost_nanos, format_usd

CONFIG = Path(__file__).with_name("faregate.yaml")
SERVICES = ("support-bot", "risk-engine", "legal-docs")
TENANT = "acme"
READY_TIMEOUT = 20.0
LEDGER_TIMEOUT = 6.0
THROTTLE_TRIES = 10  # a request throttled this many times is given up
BACKOFF_S, BACKOFF_MAX_S = 0.2, 2.0  # wait after the n-th THROTTLE: doubling, capped, jittered
MAX_WAIT_S = 5.0  # a request told to wait longer than this is given up
APPROVAL_POLL_S = 1.0  # a request waiting for approval asks again this often
APPROVAL_TRIES = 12
BURST_GAP_S = 0.001  # a backfill job sends about a thousand requests a second
DRAIN_S = 4.0  # after the traffic, time left for queued retries to finish


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


@dataclass
class Pending:
    """One request of a simulated service, from its first Route until it is done."""

    profile: Profile
    tokens: Tokens
    approval_id: str = ""
    throttled: int = 0  # THROTTLE answers so far
    polls: int = 0  # APPROVAL_REQUIRED answers naming the current approval id
    retry: str = ""  # why it was queued again: "throttle" or "approval"


class Services:
    """The simulated services: ask the sidecar, honour its answer, 'call' the model, report.

    A THROTTLE is retried no sooner than its `retry_after_ms` (later still, with jitter,
    after repeated refusals, as a well-behaved client backs off); an APPROVAL_REQUIRED is
    asked again with its `approval_id` every APPROVAL_POLL_S until the operator's verdict
    makes it ALLOW or DENY. Retries wait in a queue, so the traffic never blocks on them.
    Only ALLOW and DOWNGRADE are called and reported; a DENY is final."""

    def __init__(
        self, routers: dict[str, RouterClient], snapshot: Snapshot, rng: random.Random
    ) -> None:
        self.routers = routers
        self.snapshot = snapshot
        self.rng = rng
        self.tally = Tally()
        self.baselines = {p.sensitivity: baseline_model(snapshot, p.sensitivity) for p in PROFILES}
        self._queue: list[tuple[float, int, Pending]] = []
        self._order = itertools.count()

    def later(self, at: float, pending: Pending) -> None:
        heapq.heappush(self._queue, (at, next(self._order), pending))

    def next_due(self) -> float:
        return self._queue[0][0] if self._queue else math.inf

    def serve_due(self, now: float) -> bool:
        """Serve the first queued request whose time has come; False if none has."""
        if not self._queue or self._queue[0][0] > now:
            return False
        pending = heapq.heappop(self._queue)[2]
        if pending.retry:
            self.tally.retries[pending.retry] += 1
        self.serve(pending)
        return True

    def serve(self, pending: Pending) -> None:
        delay = self._attempt(pending)
        if delay is not None:
            self.later(time.monotonic() + delay, pending)

    def abandon(self) -> None:
        """Give up whatever is still waiting when the demo ends."""
        for _, _, pending in self._queue:
            self.tally.gave_up[f"still waiting ({pending.retry}) at the end"] += 1
        self._queue.clear()

    def _attempt(self, pending: Pending) -> float | None:
        """One Route; the delay before asking again, or None once the request is done."""
        profile, tally = pending.profile, self.tally
        prompt = pending.tokens[0]
        try:
            decision = self.routers[profile.service].route(
                profile.capability,
                tenant=TENANT,
                team=profile.team,
                sensitivity=profile.sensitivity,
                risk=profile.risk,
                priority=profile.priority,
                complexity=profile.complexity,
                input_tokens=prompt,
                max_output_tokens=int(prompt * profile.output_cap_per_input_token),
                labels={"source": "demo"},
                approval_id=pending.approval_id,
            )
        except FaregateError as error:
            tally.errors[f"{error.code.name}: {error.message}"] += 1
            return None
        tally.record(decision)
        rules = {fired.rule for fired in decision.rules}
        if decision.action is Action.THROTTLE:
            pending.throttled += 1
            if pending.throttled >= THROTTLE_TRIES:
                tally.gave_up[f"throttled {THROTTLE_TRIES} times"] += 1
                return None
            retry_after = decision.retry_after_ms / 1000
            if retry_after > MAX_WAIT_S:
                tally.gave_up[f"told to wait over {MAX_WAIT_S:g} s"] += 1
                return None
            pending.retry = "throttle"
            # Never sooner than told; spread out, so the refused do not all come back at once.
            backoff = min(BACKOFF_MAX_S, BACKOFF_S * 2.0 ** (pending.throttled - 1))
            return max(retry_after, backoff * self.rng.uniform(0.5, 1.0))
        if decision.action is Action.APPROVAL_REQUIRED:
            if decision.approval_id != pending.approval_id:
                tally.approvals_requested += 1
                pending.approval_id, pending.polls = decision.approval_id, 0
            pending.polls += 1
            if not decision.approval_id or pending.polls >= APPROVAL_TRIES:
                tally.gave_up["no verdict on the approval"] += 1
                return None
            pending.retry = "approval"
            return APPROVAL_POLL_S
        if not decision.allowed:
            tally.approvals_refused += "approval:denied" in rules
            return None
        tally.approvals_used += "approval:granted" in rules
        self._call(pending, decision)
        return None

    def _call(self, pending: Pending, decision: RouteResult) -> None:
        """'Call' the chosen model, report what it used, price both sides of the comparison."""
        profile, tally, rng = pending.profile, self.tally, self.rng
        prompt, cached, output = pending.tokens
        output = min(output, decision.max_output_tokens or output)
        failed = rng.random() < FAILURE_RATE
        if failed:  # the provider errored mid-stream: the prompt is billed, little output
            output = rng.randint(0, output // 10)
            tally.failures += 1
        self.routers[profile.service].report(
            decision.decision_id,
            input_tokens=prompt,
            cached_input_tokens=cached,
            output_tokens=output,
            latency_ms=simulated_latency_ms(decision.tier, output, rng),
            outcome="failure" if failed else "success",
        )
        tally.reports += 1
        model = self.snapshot.models_by_name.get(decision.model)
        if model is not None:
            tally.cost_nanos[profile.capability] += cost_nanos(model.price, prompt, cached, output)
        # Like with like: this call's own tokens on the most capable model its data may use.
        baseline = self.baselines[profile.sensitivity]
        tally.baseline_nanos[profile.capability] += cost_nanos(
            baseline.price, prompt, cached, output
        )


def drive_traffic(
    services: Services, approver: Approver, args: argparse.Namespace, console: Console
) -> Tally:
    """Weighted random requests at about `args.rate` a second for `args.seconds`, the jobs'
    bursts on top, then up to DRAIN_S for the retries still queued; the operator decides
    meanwhile."""
    rng, tally = random.Random(args.seed), services.tally
    steady = [p for p in PROFILES if not p.every_s]
    weights = [p.weight for p in steady]
    jobs = [p for p in PROFILES if p.every_s]
    job_due = [job.every_s / 2 for job in jobs]  # seconds into the run
    progress = Progress(
        TextColumn("[bold]{task.description:<7}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[decisions]:>6} decisions  {task.fields[spend]:>10} spent"),
        console=console,
    )
    with progress:
        task = progress.add_task("traffic", total=args.seconds, decisions=0, spend="$0")
        start = time.monotonic()
        approver.start(start)
        sent = 0
        while True:
            now = time.monotonic()
            elapsed = now - start
            traffic = elapsed < args.seconds
            if not traffic and services.next_due() > start + args.seconds + DRAIN_S:
                break  # nothing left that could still finish in time
            approver.tick(now)
            for index, job in enumerate(jobs):
                if traffic and elapsed >= job_due[index]:
                    job_due[index] += job.every_s
                    count = rng.randint(*job.burst)
                    tally.requests += count
                    for n in range(count):
                        services.later(now + n * BURST_GAP_S, Pending(job, job.draw(rng)))
            if services.serve_due(now):
                pass
            elif traffic and sent <= elapsed * args.rate:
                sent += 1
                tally.requests += 1
                profile = rng.choices(steady, weights)[0]
                services.serve(Pending(profile, profile.draw(rng)))
            else:
                on_pace = start + sent / args.rate if traffic else math.inf
                wake = min(on_pace, services.next_due(), approver.next_at, now + 0.05)
                time.sleep(max(0.0, wake - now))
            progress.update(
                task,
                description="traffic" if traffic else "retries",
                completed=min(elapsed, args.seconds),
                decisions=tally.decisions,
                spend=format_usd(sum(tally.cost_nanos.values()), 4),
            )
    services.abandon()
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
            # Its own generator for call outcomes and jitter: the traffic's stays reproducible.
            services = Services(routers, snapshot, random.Random(args.seed + 1))
            approver = Approver(admin)
            tally = drive_traffic(services, approver, args, console)
            for router in routers.values():
                router.close()  # ships the last queued reports
            by_capability = wait_for_ledger(admin, tally.reports, console)
            by_model = admin.spend(0, "model")
        print_summary(
            console,
            tally,
            by_capability,
            by_model,
            services.baselines.values(),
            approver.approved,
            approver.denied,
        )
        for error, count in approver.errors.most_common():
            console.print(f"[yellow]{count} operator errors: {error}[/]")
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
    parser.add_argument(
        "--rate", type=float, default=200.0, help="requests per second (retries and bursts on top)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the traffic generator")
    sys.exit(run(parser.parse_args(), Console()))


if __name__ == "__main__":
    main()
