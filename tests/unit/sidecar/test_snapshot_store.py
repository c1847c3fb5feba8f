"""Snapshot checks, all-or-nothing apply, and the last good copy on disk."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from faregate.model import Capability, Price, PriceTier, RoutingPolicy, Snapshot, content_version
from sidecar.convert import SnapshotFileCodec
from sidecar.snapshot_check import check_snapshot
from sidecar.snapshot_store import SNAPSHOT_FILE, SnapshotRejected, SnapshotStore
from sidecar.state_dir import load_or_create_sidecar_id, write_atomic
from tests.unit.sidecar.catalog import CHAT, SMALL, TINY, make_snapshot


def store_at(path: Path) -> SnapshotStore:
    return SnapshotStore(path, SnapshotFileCodec())


def test_a_consistent_snapshot_passes() -> None:
    assert check_snapshot(make_snapshot()) == ()


BAD_PRICE = dataclasses.replace(TINY, price=Price(-1, 0, 0))
BAD_TIERS = dataclasses.replace(
    TINY,
    price=Price(1, 1, 1, tiers=(PriceTier(500, 1, 1, 1), PriceTier(100, 1, 1, 1))),
)


@pytest.mark.parametrize(
    ("snapshot", "problem"),
    [
        (
            dataclasses.replace(make_snapshot(), version="v0000000000000000"),
            "does not match its content",
        ),
        (dataclasses.replace(make_snapshot(), version=""), "version is empty"),
        (
            make_snapshot(capabilities=(dataclasses.replace(CHAT, candidates=("tiny", "gone")),)),
            "candidate 'gone' is not a known model",
        ),
        (
            make_snapshot(capabilities=(dataclasses.replace(CHAT, default_max_output_tokens=0),)),
            "default_max_output_tokens must be > 0",
        ),
        (
            make_snapshot(capabilities=(dataclasses.replace(CHAT, candidates=()),)),
            "has no candidate models",
        ),
        (make_snapshot(models=(SMALL, SMALL), capabilities=()), "defined twice"),
        (
            make_snapshot(models=(dataclasses.replace(TINY, context_window=0),), capabilities=()),
            "context_window must be > 0",
        ),
        (
            make_snapshot(
                models=(dataclasses.replace(TINY, max_output_tokens=0),), capabilities=()
            ),
            "max_output_tokens must be > 0",
        ),
        (make_snapshot(models=(BAD_PRICE,), capabilities=()), "must not be negative"),
        (make_snapshot(models=(BAD_TIERS,), capabilities=()), "tiers must start above 0"),
        (
            make_snapshot(
                models=(TINY,),
                capabilities=(
                    Capability("c", "", 10, ("tiny",), RoutingPolicy(strategy="fastest")),
                ),
            ),
            "unknown routing strategy 'fastest'",
        ),
        (
            make_snapshot(
                models=(TINY, SMALL),
                capabilities=(
                    Capability("c", "", 10, ("tiny",), RoutingPolicy(downgrade_chain=("small",))),
                ),
            ),
            "downgrade model 'small' is not one of its candidates",
        ),
    ],
    ids=[
        "version mismatch",
        "empty version",
        "unknown candidate",
        "zero default output",
        "no candidates",
        "duplicate model",
        "zero context window",
        "zero max output",
        "negative price",
        "tiers out of order",
        "unknown strategy",
        "downgrade outside candidates",
    ],
)
def test_inconsistent_snapshots_are_refused(snapshot: Snapshot, problem: str) -> None:
    problems = check_snapshot(snapshot)
    assert any(problem in p for p in problems), problems


def test_every_problem_is_reported() -> None:
    broken = make_snapshot(
        capabilities=(
            dataclasses.replace(CHAT, candidates=("x", "y"), default_max_output_tokens=0),
        )
    )
    assert len(check_snapshot(broken)) == 3


def test_apply_swaps_and_persists(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    seen: list[str] = []
    store.subscribe(lambda s: seen.append(s.version))
    snapshot = make_snapshot()
    store.apply(snapshot)
    assert store.current == snapshot
    assert store.version == snapshot.version
    assert seen == [snapshot.version]
    assert (tmp_path / SNAPSHOT_FILE).exists()
    assert not (tmp_path / (SNAPSHOT_FILE + ".tmp")).exists()


@pytest.mark.parametrize(
    "bad",
    [
        dataclasses.replace(make_snapshot(revision=2), version="v0000000000000000"),
        make_snapshot(capabilities=(dataclasses.replace(CHAT, candidates=("tiny", "gone")),)),
    ],
    ids=["version mismatch", "unknown candidate"],
)
def test_rejected_snapshot_keeps_the_old_one(tmp_path: Path, bad: Snapshot) -> None:
    store = store_at(tmp_path)
    good = make_snapshot()
    store.apply(good)
    on_disk = (tmp_path / SNAPSHOT_FILE).read_bytes()
    with pytest.raises(SnapshotRejected):
        store.apply(bad)
    assert store.current == good
    assert (tmp_path / SNAPSHOT_FILE).read_bytes() == on_disk


def test_last_good_snapshot_survives_a_restart(tmp_path: Path) -> None:
    snapshot = make_snapshot(revision=7)
    store_at(tmp_path).apply(snapshot)
    restarted = store_at(tmp_path)
    assert restarted.current is None
    loaded = restarted.load()
    assert loaded == snapshot
    assert restarted.current == snapshot
    assert loaded is not None and loaded.revision == 7
    assert content_version(loaded) == snapshot.version


def test_no_file_means_no_snapshot(tmp_path: Path) -> None:
    assert store_at(tmp_path / "fresh").load() is None


@pytest.mark.parametrize(
    "content",
    [b"\xff\xff not a protobuf", b""],
    ids=["garbage", "empty"],
)
def test_unusable_file_is_ignored(tmp_path: Path, content: bytes) -> None:
    (tmp_path / SNAPSHOT_FILE).write_bytes(content)
    store = store_at(tmp_path)
    assert store.load() is None
    assert store.current is None


def test_file_with_a_stale_version_is_ignored(tmp_path: Path) -> None:
    tampered = dataclasses.replace(make_snapshot(), version="v0000000000000000")
    (tmp_path / SNAPSHOT_FILE).write_bytes(SnapshotFileCodec().encode(tampered))
    assert store_at(tmp_path).load() is None


def test_sidecar_id_is_created_once_and_kept(tmp_path: Path) -> None:
    ids = iter(["first", "second"])
    assert load_or_create_sidecar_id(tmp_path, lambda: next(ids)) == "first"
    assert load_or_create_sidecar_id(tmp_path, lambda: next(ids)) == "first"
    assert (tmp_path / "sidecar-id").read_text().strip() == "first"


def test_garbled_sidecar_id_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "sidecar-id").write_text("not an id\n\n")
    assert load_or_create_sidecar_id(tmp_path, lambda: "fresh") == "fresh"


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "file.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.json"]
