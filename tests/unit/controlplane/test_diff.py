"""Dry-run changes: what applying a configuration would add, change and remove."""

from __future__ import annotations

from pathlib import Path

from controlplane.compiler import compile_snapshot
from controlplane.config import load_config
from controlplane.diff import Change, diff_snapshots
from faregate.model import Snapshot

EXAMPLE_TEXT = (Path(__file__).resolve().parents[3] / "examples" / "faregate.yaml").read_text()


def snapshot(text: str = EXAMPLE_TEXT) -> Snapshot:
    return compile_snapshot(load_config(text), 1, 0)


def test_first_apply_adds_everything() -> None:
    changes = diff_snapshots(None, snapshot())
    assert {c.op for c in changes} == {"add"}
    assert [c.name for c in changes if c.kind == "model"][:2] == ["claude-sonnet-4", "gpt-4o"]
    assert len([c for c in changes if c.kind == "capability"]) == 5
    assert Change("tenant", "acme", "add", "teams: support, risk, legal, planning") in changes


def test_identical_snapshots_have_no_changes() -> None:
    assert diff_snapshots(snapshot(), snapshot()) == ()


def test_price_change_is_shown_in_usd() -> None:
    changed = snapshot(EXAMPLE_TEXT.replace("output: 0.60}", "output: 0.65}"))
    assert diff_snapshots(snapshot(), changed) == (
        Change("model", "gpt-4o-mini", "change", "price.output: $0.6000/Mtok -> $0.6500/Mtok"),
    )


def test_add_change_and_remove_together() -> None:
    # Guardrails and governance close the example; start from none of either.
    base = EXAMPLE_TEXT[: EXAMPLE_TEXT.index("\nguardrails:") + 1]
    base += "guardrails: {}\ngovernance: {}\n"
    text = (
        base.replace("  - name: gpt-4o-mini\n", "  - name: gpt-4o-mini\n    unavailable: true\n")
        .replace("guardrails: {}", "guardrails: {ceilings: [{name: c, max_input_tokens: 9}]}")
        .replace("      - {name: legal, cost_center: CC-5200}\n", "")
    )
    changes = diff_snapshots(snapshot(base), snapshot(text))
    assert Change("model", "gpt-4o-mini", "change", "unavailable: false -> true") in changes
    assert Change("guardrails", "guardrails", "change", "changed: ceilings") in changes
    tenant = next(c for c in changes if c.kind == "tenant")
    assert tenant.op == "change" and "teams" in tenant.detail
    removed = diff_snapshots(snapshot(text), snapshot(base))
    assert Change("guardrails", "guardrails", "change", "changed: ceilings") in removed
