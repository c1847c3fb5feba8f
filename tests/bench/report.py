"""What a benchmark run produced, and how it is shown: the table and the JSON file.

A benchmark returns one `Section`: named metrics (each with its unit), the targets
it was measured against, and notes (what was skipped and why, what a number
means). This module renders sections as a plain-text table and writes them, with
the machine and the date, to `bench-results/latest.json`. Must not run anything.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tests.bench.stats import Latency


@dataclass(frozen=True, slots=True)
class Metric:
    key: str  # stable, for the JSON file and for comparing runs
    label: str  # for people
    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class Target:
    description: str  # e.g. "Decider.route median < 25 µs"
    metric: str  # the key of the metric it judges
    met: bool


@dataclass(slots=True)
class Section:
    name: str
    title: str
    metrics: list[Metric] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time the benchmark took

    def add(self, key: str, label: str, value: float, unit: str) -> Metric:
        metric = Metric(key, label, value, unit)
        self.metrics.append(metric)
        return metric

    def target(self, description: str, metric: Metric, met: bool) -> None:
        self.targets.append(Target(description, metric.key, met))

    def note(self, text: str) -> None:
        self.notes.append(text)


def add_latency(section: Section, key: str, label: str, latency: Latency) -> Metric:
    """Median, p90 and p99 rows; returns the median's metric (what targets judge)."""
    median = section.add(f"{key}.median_us", f"{label} median", latency.median_us, "µs")
    section.add(f"{key}.p90_us", f"{label} p90", latency.p90_us, "µs")
    section.add(f"{key}.p99_us", f"{label} p99", latency.p99_us, "µs")
    return median


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
    }


def _format_value(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def print_section(section: Section, out: TextIO = sys.stdout) -> None:
    print(f"\n== {section.title} ({section.seconds:.1f} s)", file=out)
    if section.metrics:
        width = max(len(m.label) for m in section.metrics)
        for metric in section.metrics:
            value = _format_value(metric.value)
            print(f"  {metric.label:<{width}}  {value:>12} {metric.unit}", file=out)
    for target in section.targets:
        verdict = "met" if target.met else "NOT met"
        print(f"  target: {target.description}: {verdict}", file=out)
    for note in section.notes:
        print(f"  note: {note}", file=out)


def write_json(sections: Sequence[Section], path: Path, started: datetime.datetime) -> None:
    document = {
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "benchmarks": {
            section.name: {
                "title": section.title,
                "seconds": round(section.seconds, 3),
                "metrics": {
                    m.key: {"value": m.value, "unit": m.unit, "label": m.label}
                    for m in section.metrics
                },
                "targets": [asdict(t) for t in section.targets],
                "notes": section.notes,
            }
            for section in sections
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
