"""Compiling a snapshot for deciding: prices flattened exactly, bad policy rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faregate.model import Model
from faregate.policy import PolicyDecodeError
from faregate.pricing import worst_case_cost_nanos
from sidecar.compiled import PolicyCache, compile_policy, model_entry, parse_tiers
from sidecar.convert import SnapshotFileCodec
from sidecar.snapshot_store import SnapshotRejected, SnapshotStore
from tests.unit.sidecar.catalog import BIG, LONG, TINY, make_snapshot


@pytest.mark.parametrize("model", [BIG, TINY, LONG], ids=lambda m: m.name)
@pytest.mark.parametrize(
    "tokens", [(0, 0), (1_000, 500), (199_999, 10), (200_000, 10), (900_000, 7)]
)
def test_worst_case_matches_pricing(model: Model, tokens: tuple[int, int]) -> None:
    expected = worst_case_cost_nanos(model, *tokens)
    assert model_entry(model).worst_case_cost_nanos(*tokens) == expected


def test_tier_lists_are_comma_separated() -> None:
    assert parse_tiers("local, small,,") == frozenset({"local", "small"})
    assert parse_tiers("large") == frozenset({"large"})


BAD: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("unknown guardrails key", {"limits": []}, {}),
    ("ceilings not a list", {"ceilings": 5}, {}),
    ("negative ceiling", {"ceilings": [{"name": "c", "max_cost_nanos": -1}]}, {}),
    ("reserve of 1", {"throttles": [{"name": "t", "reserves": {"batch": 1.0}}]}, {}),
    ("string rate", {"throttles": [{"name": "t", "requests_per_second": "9"}]}, {}),
    ("unknown action", {}, {"matrix": {"high": {"high": "maybe"}}}),
    ("bands out of order", {}, {"band_limits_nanos": [10, 5]}),
]


@pytest.mark.parametrize(("name", "guardrails", "governance"), BAD, ids=[b[0] for b in BAD])
def test_undecodable_policy_is_rejected_and_never_served(
    tmp_path: Path, name: str, guardrails: dict[str, Any], governance: dict[str, Any]
) -> None:
    snapshot = make_snapshot(guardrails=guardrails, governance=governance)
    with pytest.raises(PolicyDecodeError):
        compile_policy(snapshot)
    store = SnapshotStore(tmp_path, SnapshotFileCodec())
    good = make_snapshot()
    store.apply(good)
    with pytest.raises(SnapshotRejected):
        store.apply(snapshot)
    assert store.current is good


def test_the_store_compiles_once_for_the_decider(tmp_path: Path) -> None:
    policies = PolicyCache()
    store = SnapshotStore(tmp_path, SnapshotFileCodec(), policies)
    snapshot = make_snapshot(guardrails={"blocked": [{"name": "b", "tier": "large"}]})
    store.apply(snapshot)
    policy = policies.get(snapshot)
    assert policies.get(snapshot) is policy
    blocked = policy.capabilities["chat"].blocked
    assert [(b.rule.name, sorted(b.models)) for b in blocked] == [("b", ["big"])]
