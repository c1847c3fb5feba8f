"""`make bench`: run the benchmarks, print one table, write `bench-results/latest.json`.

`python -m tests.bench [decision|router_rpc|ledger ...] [--quick] [--profile]`.
With no names every benchmark runs (about 30 s on two cores);
`--quick` cuts the iteration counts for a smoke run, `--profile` adds cProfile
hotspots of ledger ingestion to its notes. A benchmark that fails is reported and
the others still run; the exit status is then 1. Targets never fail the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.bench import decision, ledger, router_rpc
from tests.bench.report import Section, machine, print_section, write_json

DEFAULT_OUTPUT = Path("bench-results") / "latest.json"
NAMES = ("decision", "router_rpc", "ledger")


def _benchmarks(quick: bool, profile: bool) -> dict[str, Callable[[], Section]]:
    decision_options = decision.Options()
    rpc_options = router_rpc.Options()
    ledger_options = ledger.Options(profile=profile)
    if quick:
        decision_options = dataclasses.replace(
            decision_options, iterations=2_000, warmup=200, replays=500
        )
        rpc_options = dataclasses.replace(
            rpc_options, routes=300, warmup=50, reports=100, report_rounds=1
        )
        ledger_options = dataclasses.replace(ledger_options, batches=4, warmup=1)
    return {
        "decision": lambda: decision.run(decision_options),
        "router_rpc": lambda: router_rpc.run(rpc_options),
        "ledger": lambda: ledger.run(ledger_options),
    }


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run: {', '.join(NAMES)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    parser.add_argument("--profile", action="store_true", help="cProfile ledger ingestion")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    started = datetime.datetime.now(datetime.UTC)
    benchmarks = _benchmarks(args.quick, args.profile)
    names = args.names or list(NAMES)
    host = machine()
    print(
        f"faregate benchmarks, {started:%Y-%m-%d %H:%M} UTC: python {host['python']}, "
        f"{host['cpu_count']} CPUs, {host['platform']}"
    )
    print("medians and ratios are measured side by side in one run; compare those, not runs")
    sections: list[Section] = []
    failed = False
    for name in names:
        began = time.monotonic()
        try:
            section = benchmarks[name]()
        except Exception:
            failed = True
            section = Section(name, f"{name}: FAILED")
            section.note(traceback.format_exc().rstrip())
        section.seconds = time.monotonic() - began
        print_section(section)
        sections.append(section)
    write_json(sections, args.output, started)
    print(f"\nwritten to {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
