"""clients.cli: the `faregate` commands against a fake Admin client injected through `obj=`."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner, Result

from clients.admin_results import (
    ApplyResult,
    ConfigChange,
    RevisionInfo,
    SidecarInfo,
    SidecarList,
    SpendReport,
    SpendRow,
)
from clients.cli import CliContext, cli
from clients.errors import FaregateError, error_for
from faregate.model import (
    Capability,
    Locality,
    Model,
    Price,
    Snapshot,
    Team,
    Tenant,
)

NOW_MS = 1_750_000_000_000

SNAPSHOT = Snapshot(
    version="vfeedface",
    revision=3,
    created_at_unix_ms=NOW_MS,
    models=(
        Model(
            "gpt-4o-mini",
            "openai",
            "small",
            Locality.EXTERNAL,
            context_window=128_000,
            max_output_tokens=16_384,
            price=Price(150_000_000, 75_000_000, 600_000_000),
            compliance_tags=("soc2",),
        ),
    ),
    capabilities=(Capability("sentiment", "", 8, ("gpt-4o-mini",)),),
    tenants=(Tenant("acme", (Team("support", "CC-2100"),)),),
)


class FakeAdmin:
    """Answers like the Admin API; `fail` makes every call raise that error."""

    def __init__(self, fail: FaregateError | None = None) -> None:
        self.fail = fail
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.closed = False

    def _record(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        if self.fail is not None:
            raise self.fail

    def apply_config(
        self, yaml_text: str, source_name: str = "", *, dry_run: bool = False, author: str = ""
    ) -> ApplyResult:
        self._record("apply_config", yaml_text, source_name, dry_run)
        return ApplyResult(
            revision=0 if dry_run else 4,
            snapshot_version="vnew",
            changes=(ConfigChange("model", "gpt-4o-mini", "change", "output price 0.60 -> 0.50"),),
            dry_run=dry_run,
        )

    def list_revisions(self, limit: int = 0) -> list[RevisionInfo]:
        self._record("list_revisions", limit)
        return [RevisionInfo(3, "vfeedface", NOW_MS, "ops", "faregate.yaml", 8, 5, 1)]

    def get_snapshot(self, revision: int = 0) -> Snapshot:
        self._record("get_snapshot", revision)
        return SNAPSHOT

    def list_sidecars(self) -> SidecarList:
        self._record("list_sidecars")
        return SidecarList(
            sidecars=(
                SidecarInfo(
                    "sc-1", "support-bot", True, "vfeedface", last_seen_unix_ms=NOW_MS - 4000
                ),
                SidecarInfo(
                    "sc-2",
                    "legal-docs",
                    False,
                    "vold",
                    "vfeedface",
                    "unknown model x",
                    last_seen_unix_ms=NOW_MS - 7_200_000,
                ),
            ),
            current_version="vfeedface",
        )

    def spend(self, window_ms: int = 0, group_by: str = "capability") -> SpendReport:
        self._record("spend", window_ms, group_by)
        return SpendReport(
            rows=(
                SpendRow("sentiment", 250_000_000, 1000, 150_000, 0, 3_000),
                SpendRow("summarization", 750_000_000, 50, 400_000, 0, 20_000),
            ),
            total_cost_nanos=1_000_000_000,
            total_requests=1050,
            window_ms=window_ms,
            group_by=group_by,
        )

    def close(self) -> None:
        self.closed = True


def invoke(admin: FakeAdmin, *args: str) -> Result:
    context = CliContext(admin_factory=lambda target: admin, clock=lambda: NOW_MS / 1000)
    return CliRunner().invoke(cli, list(args), obj=context, env={"COLUMNS": "200"})


def test_spend_table_has_shares_unit_costs_and_a_total() -> None:
    admin = FakeAdmin()
    result = invoke(admin, "spend", "--window", "7d", "--by", "capability")
    assert result.exit_code == 0, result.output
    assert admin.calls == [("spend", (604_800_000, "capability"))]
    lines = result.output.splitlines()
    assert any("Spend by capability, last 7d" in line for line in lines)
    summarization = next(line for line in lines if "summarization" in line)
    sentiment = next(line for line in lines if "sentiment" in line)
    assert lines.index(summarization) < lines.index(sentiment)  # most expensive first
    for cell in ("$0.7500", "50", "420,000", "75.0%", "$15.0000"):
        assert cell in summarization
    for cell in ("$0.2500", "1,000", "25.0%", "$0.2500"):
        assert cell in sentiment
    total = next(line for line in lines if "total" in line)
    for cell in ("$1.0000", "1,050", "573,000", "100.0%", "$0.9524"):
        assert cell in total
    assert admin.closed


def test_spend_as_json_keeps_integer_nanos() -> None:
    result = invoke(FakeAdmin(), "-o", "json", "spend", "--window", "all", "--by", "model")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["window_ms"] == 0 and data["group_by"] == "model"
    assert data["total_cost_nanos"] == 1_000_000_000
    assert data["rows"][0]["key"] == "summarization"
    assert data["rows"][0]["cost_usd"] == "0.75"


def test_spend_rejects_a_bad_window() -> None:
    result = invoke(FakeAdmin(), "spend", "--window", "3 weeks")
    assert result.exit_code == 2
    assert "use a number and a unit s, m, h or d" in result.output


def test_apply_prints_changes_and_the_new_revision(tmp_path: Path) -> None:
    config = tmp_path / "faregate.yaml"
    config.write_text("models: []\n")
    admin = FakeAdmin()
    result = invoke(admin, "apply", "-f", str(config))
    assert result.exit_code == 0, result.output
    assert admin.calls == [("apply_config", ("models: []\n", str(config), False))]
    assert "~ change" in result.output and "output price 0.60 -> 0.50" in result.output
    assert "Applied revision 4: 1 change, snapshot vnew." in result.output


def test_apply_dry_run_stores_nothing(tmp_path: Path) -> None:
    config = tmp_path / "faregate.yaml"
    config.write_text("models: []\n")
    result = invoke(FakeAdmin(), "apply", "-f", str(config), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Dry run: 1 change, would publish snapshot vnew; nothing was stored." in result.output


def test_apply_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("models: oops\n")
    problems = "bad.yaml:1: models: must be a list\nbad.yaml:1: capabilities: required"
    admin = FakeAdmin(fail=error_for(grpc.StatusCode.INVALID_ARGUMENT, problems))
    result = invoke(admin, "apply", "-f", str(config))
    assert result.exit_code == 1
    assert "bad.yaml:1: models: must be a list" in result.output
    assert "bad.yaml:1: capabilities: required" in result.output
    assert "Traceback" not in result.output


def test_apply_missing_file_exits_2(tmp_path: Path) -> None:
    admin = FakeAdmin()
    result = invoke(admin, "apply", "-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "no such file" in result.output
    assert admin.calls == []


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_unreachable_control_plane_is_one_line_and_exit_3(code: grpc.StatusCode) -> None:
    admin = FakeAdmin(fail=error_for(code, "failed to connect to all addresses"))
    context = CliContext(admin_factory=lambda target: admin)
    result = CliRunner().invoke(
        cli, ["--controlplane", "10.9.9.9:7400", "get", "models"], obj=context
    )
    assert result.exit_code == 3
    assert result.output.count("\n") == 1
    assert "cannot reach the control plane at 10.9.9.9:7400" in result.output


def test_controlplane_comes_from_the_environment() -> None:
    targets: list[str] = []
    admin = FakeAdmin()

    def factory(target: str) -> FakeAdmin:
        targets.append(target)
        return admin

    result = CliRunner().invoke(
        cli,
        ["get", "tenants"],
        obj=CliContext(admin_factory=factory),
        env={"FAREGATE_CONTROLPLANE": "cp.internal:7400"},
    )
    assert result.exit_code == 0, result.output
    assert targets == ["cp.internal:7400"]
    assert "CC-2100" in result.output


def test_get_models_shows_exact_prices() -> None:
    result = invoke(FakeAdmin(), "get", "models")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "gpt-4o-mini" in line)
    for cell in ("openai", "small", "external", "soc2", "128,000", "$0.15", "$0.075", "$0.60"):
        assert cell in row


def test_get_capabilities() -> None:
    result = invoke(FakeAdmin(), "get", "capabilities")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "sentiment" in line)
    assert "gpt-4o-mini" in row and "cheapest" in row


def test_get_sidecars_marks_the_ones_behind() -> None:
    result = invoke(FakeAdmin(), "get", "sidecars")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    current = next(line for line in lines if "support-bot" in line)
    behind = next(line for line in lines if "legal-docs" in line)
    assert "not current" not in current and "4s ago" in current
    assert "vold ← not current" in behind and "2h ago" in behind
    assert "vfeedface: unknown model x" in behind
    assert "1 of 2 not on the current version" in result.output


def test_get_revisions_as_json() -> None:
    result = invoke(FakeAdmin(), "-o", "json", "get", "revisions")
    assert result.exit_code == 0, result.output
    (revision,) = json.loads(result.output)
    assert revision["revision"] == 3 and revision["capabilities"] == 5


def test_every_command_teaches_with_an_example() -> None:
    for args in (
        [],
        ["apply"],
        ["get"],
        ["get", "models"],
        ["get", "capabilities"],
        ["get", "tenants"],
        ["get", "sidecars"],
        ["get", "revisions"],
        ["spend"],
    ):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Example" in result.output and "faregate " in result.output, args
