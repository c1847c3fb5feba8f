"""The whole loop through real processes: apply → push → Route → Report → spend.

Every test runs on the embedded SQLite store and on PostgreSQL (`database_url`).
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients import AdminClient, RouterClient
from controlplane.sql_store import SqlStore
from faregate.model import Action
from tests.integration.processes import (
    ServerProcess,
    controlplane,
    faregate_cli,
    sidecar,
    wait_for,
)

EXAMPLE = Path(__file__).parent / "fixtures" / "catalog.yaml"
SHIPPED_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "faregate.yaml"


@pytest.fixture
def cp(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = controlplane(tmp_path, database_url).start()
    try:
        yield process
    finally:
        process.stop()


def apply_file(cp: ServerProcess, path: Path) -> dict[str, object]:
    result = faregate_cli(cp.address, "--output", "json", "apply", "-f", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    applied: dict[str, object] = json.loads(result.stdout)
    return applied


def current_version(cp: ServerProcess) -> str:
    with AdminClient(cp.address) as admin:
        return admin.get_snapshot(0).version


def routed_version(router: RouterClient) -> str:
    try:
        return router.route("classification", tenant="acme", team="support").config_version
    except Exception:  # no snapshot yet: UNAVAILABLE
        return ""


def test_apply_route_report_and_spend(tmp_path: Path, cp: ServerProcess) -> None:
    apply_file(cp, EXAMPLE)
    version = current_version(cp)
    sc = sidecar(tmp_path, cp.address, "support-bot").start()
    try:
        with RouterClient(sc.address) as router:
            wait_for(lambda: routed_version(router) == version, what="snapshot pushed")
            decision = router.route(
                "classification", tenant="acme", team="support", input_tokens=300
            )
            assert decision.action is Action.ALLOW
            # The cheapest classification candidate in the example catalog.
            assert decision.model == "llama-3.1-8b-local"
            assert decision.estimated_cost_nanos > 0
            assert decision.config_version == version
            result = router.report(
                decision.decision_id, input_tokens=1_000_000, output_tokens=0, wait=True
            )
            assert result is not None and result.accepted
            # llama-3.1-8b-local: $0.04 per million input tokens.
            assert result.cost_nanos == 40_000_000

        def spend() -> dict[str, object] | None:
            out = faregate_cli(
                cp.address, "--output", "json", "spend", "--window", "1h", "--by", "model"
            )
            assert out.returncode == 0, out.stderr
            data: dict[str, object] = json.loads(out.stdout)
            return data if data.get("total_cost_nanos") == 40_000_000 else None

        data = wait_for(spend, what="usage in the ledger")
        rows = data["rows"]
        assert [row["key"] for row in rows] == ["llama-3.1-8b-local"]

        sidecars = json.loads(faregate_cli(cp.address, "-o", "json", "get", "sidecars").stdout)
        (entry,) = sidecars["sidecars"]
        assert entry["service"] == "support-bot"
        assert entry["connected"] is True
        assert entry["snapshot_version"] == version
    finally:
        sc.stop()


def test_confidential_request_goes_to_a_local_model(tmp_path: Path, cp: ServerProcess) -> None:
    apply_file(cp, EXAMPLE)
    version = current_version(cp)
    sc = sidecar(tmp_path, cp.address, "legal-docs").start()
    try:
        with RouterClient(sc.address) as router:
            wait_for(lambda: routed_version(router) == version, what="snapshot pushed")
            # Too long for the small local model's 32k context window.
            public = router.route("translation", tenant="acme", input_tokens=40_000)
            secret = router.route(
                "translation", tenant="acme", sensitivity="confidential", input_tokens=40_000
            )
            assert public.model == "gemini-2.0-flash"
            assert secret.model == "llama-3.3-70b-local"
            assert any(fired.rule.startswith("sensitivity:") for fired in secret.rules)
    finally:
        sc.stop()


def test_config_change_reaches_a_running_sidecar(tmp_path: Path, cp: ServerProcess) -> None:
    apply_file(cp, EXAMPLE)
    first = current_version(cp)
    sc = sidecar(tmp_path, cp.address, "support-bot").start()
    try:
        with RouterClient(sc.address) as router:
            wait_for(lambda: routed_version(router) == first, what="first snapshot")
            assert router.route("classification").model == "llama-3.1-8b-local"
            # Mark the cheapest classification model unavailable.
            text = EXAMPLE.read_text().replace(
                "  - name: llama-3.1-8b-local\n",
                "  - name: llama-3.1-8b-local\n    unavailable: true\n",
            )
            changed = tmp_path / "changed.yaml"
            changed.write_text(text)
            applied = apply_file(cp, changed)
            assert applied["revision"] == 2
            second = current_version(cp)
            assert second != first
            wait_for(lambda: routed_version(router) == second, what="second snapshot")
            assert router.route("classification").model == "gemini-2.0-flash"
    finally:
        sc.stop()


def test_invalid_file_is_rejected_whole_with_line_numbers(
    tmp_path: Path, cp: ServerProcess
) -> None:
    apply_file(cp, EXAMPLE)
    text = EXAMPLE.read_text()
    broken = text.replace("price: {input: 0.15,", "price: {input: -0.15,", 1).replace(
        "candidates: [gpt-4o-mini, claude-3.5-haiku, gemini-2.5-pro",
        "candidates: [gpt-4o-mini, claude-9, gemini-2.5-pro",
    )
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    result = faregate_cli(cp.address, "apply", "-f", str(path))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    price_line = broken.splitlines().index(
        next(line for line in broken.splitlines() if "input: -0.15" in line)
    )
    assert f"broken.yaml:{price_line + 1}:" in output
    assert "claude-9" in output
    revisions = json.loads(faregate_cli(cp.address, "-o", "json", "get", "revisions").stdout)
    assert [r["revision"] for r in revisions] == [1]


def test_sidecar_serves_without_the_control_plane(tmp_path: Path, database_url: str) -> None:
    cp = controlplane(tmp_path, database_url).start()
    sc: ServerProcess | None = None
    try:
        apply_file(cp, EXAMPLE)
        version = current_version(cp)
        sc = sidecar(tmp_path, cp.address, "risk-engine").start()
        with RouterClient(sc.address) as router:
            wait_for(lambda: routed_version(router) == version, what="snapshot pushed")
            cp.kill()
            # Fail-static: a running sidecar keeps answering.
            assert router.route("summarization", input_tokens=4000).allowed
        sc.stop()
        # A restarted sidecar answers from its state dir with no control plane at all.
        sc = sidecar(tmp_path, cp.address, "risk-engine").start()
        with RouterClient(sc.address) as router:
            decision = router.route("summarization", input_tokens=4000)
            assert decision.allowed
            assert decision.config_version == version
    finally:
        if sc is not None:
            sc.stop()
        cp.kill()


def test_restarted_control_plane_serves_the_same_revisions(
    tmp_path: Path, database_url: str
) -> None:
    cp = controlplane(tmp_path, database_url).start()
    try:
        apply_file(cp, EXAMPLE)
        before = json.loads(faregate_cli(cp.address, "-o", "json", "get", "revisions").stdout)
        version = current_version(cp)
    finally:
        cp.stop()
    cp = controlplane(tmp_path, database_url).start()
    try:
        after = json.loads(faregate_cli(cp.address, "-o", "json", "get", "revisions").stdout)
        assert after == before
        assert current_version(cp) == version
        # Applying the same file again changes nothing.
        again = apply_file(cp, EXAMPLE)
        assert again["unchanged"] is True
    finally:
        cp.stop()


def _metric(address: str, name: str) -> float:
    body = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_snapshot_the_sidecar_cannot_apply_is_nacked_and_never_resent(
    tmp_path: Path, cp: ServerProcess, database_url: str
) -> None:
    apply_file(cp, EXAMPLE)
    good = current_version(cp)
    sc = sidecar(tmp_path, cp.address, "support-bot").start()
    try:
        with RouterClient(sc.address) as router:
            wait_for(lambda: routed_version(router) == good, what="first snapshot")
            # A revision whose version does not match its content, as a corrupted or
            # incompatible snapshot would arrive; written straight to the shared store
            # the way another replica would.
            store = SqlStore.open(database_url)
            try:
                current = store.get_snapshot(store.latest_revision().revision)  # type: ignore[union-attr]
                assert current is not None
                bad = dataclasses.replace(current, version="v0000000000000bad")
                store.append_revision(
                    bad,
                    yaml_text="",
                    source_name="corrupt",
                    author="test",
                    created_at_unix_ms=int(time.time() * 1000),
                )
            finally:
                store.close()

            def nacked() -> dict[str, object] | None:
                out = faregate_cli(cp.address, "-o", "json", "get", "sidecars")
                (entry,) = json.loads(out.stdout)["sidecars"]
                return entry if entry["last_nack_version"] == "v0000000000000bad" else None

            entry = wait_for(nacked, what="the sidecar's NACK")
            assert "version" in str(entry["last_nack_reason"])
            assert entry["snapshot_version"] == good
            # The sidecar keeps serving the snapshot it had.
            assert router.route("classification").config_version == good
            pushed = _metric(cp.metrics_address, "faregate_controlplane_snapshots_pushed_total")
            # Several watcher polls later, the rejected version has not been sent again.
            time.sleep(2.0)
            assert (
                _metric(cp.metrics_address, "faregate_controlplane_snapshots_pushed_total")
                == pushed
            )
            assert _metric(cp.metrics_address, "faregate_controlplane_snapshot_nacks_total") == 1
    finally:
        sc.stop()


def test_health_metrics_and_every_get_command(tmp_path: Path, cp: ServerProcess) -> None:
    apply_file(cp, EXAMPLE)
    version = current_version(cp)
    sc = sidecar(tmp_path, cp.address, "support-bot").start()
    try:
        with RouterClient(sc.address) as router:
            wait_for(lambda: routed_version(router) == version, what="snapshot pushed")
        for server in (cp, sc):
            with grpc.insecure_channel(server.address) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                assert status.status == health_pb2.HealthCheckResponse.SERVING, server.name
        assert _metric(cp.metrics_address, "faregate_controlplane_snapshot_acks_total") == 1
        sidecar_metrics = urllib.request.urlopen(
            f"http://{sc.metrics_address}/metrics", timeout=5
        ).read()
        assert b"faregate_sidecar" in sidecar_metrics

        models = faregate_cli(cp.address, "get", "models")
        assert models.returncode == 0, models.stderr
        assert "claude-sonnet-4" in models.stdout and "$15.00" in models.stdout
        capabilities = json.loads(
            faregate_cli(cp.address, "-o", "json", "get", "capabilities").stdout
        )
        assert {c["name"] for c in capabilities} == {
            "classification",
            "sentiment",
            "summarization",
            "forecasting",
            "translation",
        }
        tenants = faregate_cli(cp.address, "get", "tenants")
        assert tenants.returncode == 0 and "CC-3400" in tenants.stdout
    finally:
        sc.stop()


def test_unreachable_control_plane_is_one_clear_line() -> None:
    result = faregate_cli("127.0.0.1:1", "get", "models")
    assert result.returncode == 3
    assert "127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_shipped_example_applies_cleanly(cp: ServerProcess) -> None:
    dry = faregate_cli(cp.address, "-o", "json", "apply", "-f", str(SHIPPED_EXAMPLE), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    kinds = {change["kind"] for change in json.loads(dry.stdout)["changes"]}
    assert {"model", "capability", "tenant", "budget"} <= kinds
    applied = apply_file(cp, SHIPPED_EXAMPLE)
    assert applied["revision"] == 1
