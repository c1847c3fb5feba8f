"""Snapshot compilation: same configuration, same version; any change, a new one."""

from __future__ import annotations

from pathlib import Path

from controlplane.compiler import compile_snapshot, price_version, with_revision
from controlplane.config import load_config
from faregate.convert import snapshot_from_pb, snapshot_to_pb
from faregate.model import content_version

EXAMPLE_TEXT = (Path(__file__).resolve().parents[3] / "examples" / "faregate.yaml").read_text()


def compile_text(text: str, revision: int = 1, created: int = 1_000) -> object:
    return compile_snapshot(load_config(text), revision, created)


def test_same_configuration_compiles_to_the_same_version() -> None:
    first = compile_snapshot(load_config(EXAMPLE_TEXT), 1, 1_000)
    second = compile_snapshot(load_config(EXAMPLE_TEXT), 7, 99_000)
    assert first.version == second.version == content_version(first)
    assert first.version.startswith("v")
    assert with_revision(first, 3, 5).version == first.version


def test_a_changed_price_changes_the_version_and_that_price_version_only() -> None:
    before = compile_snapshot(load_config(EXAMPLE_TEXT), 1, 0)
    changed = EXAMPLE_TEXT.replace("output: 0.60}", "output: 0.61}")
    after = compile_snapshot(load_config(changed), 1, 0)
    assert after.version != before.version
    old = {m.name: m.price.version for m in before.models}
    new = {m.name: m.price.version for m in after.models}
    assert old["gpt-4o-mini"] != new["gpt-4o-mini"]
    assert {k: v for k, v in old.items() if k != "gpt-4o-mini"} == {
        k: v for k, v in new.items() if k != "gpt-4o-mini"
    }


def test_a_non_price_change_keeps_price_versions() -> None:
    before = compile_snapshot(load_config(EXAMPLE_TEXT), 1, 0)
    after = compile_snapshot(load_config(EXAMPLE_TEXT.replace("CC-2100", "CC-2101")), 1, 0)
    assert after.version != before.version
    assert [m.price for m in after.models] == [m.price for m in before.models]


def test_price_version_names_the_model() -> None:
    snapshot = compile_snapshot(load_config(EXAMPLE_TEXT), 1, 0)
    model = snapshot.models_by_name["gpt-4o"]
    assert model.price.version == price_version("gpt-4o", model.price)
    assert model.price.version.startswith("gpt-4o@")


def test_compiled_snapshot_survives_the_wire_with_its_version() -> None:
    snapshot = compile_snapshot(load_config(EXAMPLE_TEXT), 4, 123)
    decoded = snapshot_from_pb(snapshot_to_pb(snapshot))
    assert decoded == snapshot
    assert content_version(decoded) == snapshot.version
