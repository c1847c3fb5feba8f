"""`faregate budgets` and `faregate get leases` against a fake Admin client."""

from __future__ import annotations

import json

from clients.admin_results import BudgetStatus, LeaseInfo
from clients.errors import UnavailableError
from tests.unit.clients.test_cli import NOW_MS, FakeAdmin, invoke

HOUR = 3_600_000

BUDGETS = [
    BudgetStatus(
        name="risk-team-monthly",
        period_key="2026-12",
        limit_nanos=500_000_000,
        committed_nanos=420_000_000,
        outstanding_nanos=30_000_000,
        remaining_nanos=50_000_000,
        late_nanos=1_500_000,
        burn_rate_nanos_per_hour=40_000_000,
        projected_exhaustion_unix_ms=NOW_MS + 2 * HOUR,
        mode="strict",
        offline_policy="deny",
        soft_threshold_crossed=True,
        scope="tenant=acme team=risk",
        open_leases=2,
        period_end_unix_ms=NOW_MS + 100 * HOUR,
    ),
    BudgetStatus("quiet", "fixed", 1_000_000_000, 0, 0, 1_000_000_000, scope="all"),
]

LEASES = [
    LeaseInfo(
        "ls-1", "risk-team-monthly", "2026-12", "sc-1", "open", 20_000_000, 5_000_000,
        15_000_000, NOW_MS + 20_000, service="support-bot",
    ),
    LeaseInfo("ls-2", "risk-team-monthly", "2026-11", "sc-2", "expired", 9_000_000, 9_000_000),
]  # fmt: skip


class BudgetAdmin(FakeAdmin):
    def list_budgets(self) -> list[BudgetStatus]:
        self._record("list_budgets")
        return BUDGETS

    def list_leases(self, include_closed: bool = False) -> list[LeaseInfo]:
        self._record("list_leases", include_closed)
        return [lease for lease in LEASES if include_closed or lease.state == "open"]


def test_budgets_table_shows_money_in_usd_and_when_it_runs_out() -> None:
    result = invoke(BudgetAdmin(), "budgets")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "risk-team-monthly" in line)
    for cell in ("2026-12", "tenant=acme team=risk", "$0.50", "$0.4200", "84.0%"):
        assert cell in row
    assert "$0.0300" in row and "$0.0500" in row and "$0.0400" in row
    assert "in 2h" in row
    assert "$0.0015 late" in result.output  # late usage is called out
    quiet = next(line for line in result.output.splitlines() if "quiet" in line)
    assert "—" in quiet  # nothing burning: no projection


def test_budgets_as_json_keeps_integer_nanos() -> None:
    result = invoke(BudgetAdmin(), "-o", "json", "budgets")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [b["name"] for b in data] == ["risk-team-monthly", "quiet"]
    assert data[0]["committed_nanos"] == 420_000_000
    assert data[0]["projected_exhaustion_unix_ms"] == NOW_MS + 2 * HOUR


def test_budgets_help_has_an_example() -> None:
    result = invoke(BudgetAdmin(), "budgets", "--help")
    assert result.exit_code == 0 and "faregate budgets" in result.output


def test_get_leases_shows_open_ones_and_all_with_the_flag() -> None:
    admin = BudgetAdmin()
    result = invoke(admin, "get", "leases")
    assert result.exit_code == 0, result.output
    assert "sc-1" in result.output and "sc-2" not in result.output
    row = next(line for line in result.output.splitlines() if "sc-1" in line)
    assert "$0.0200" in row and "$0.0150" in row and "in 20s" in row
    everything = invoke(admin, "-o", "json", "get", "leases", "--all")
    assert [lease["state"] for lease in json.loads(everything.output)] == ["open", "expired"]
    assert admin.calls[-1] == ("list_leases", (True,))


def test_unreachable_control_plane_exits_3() -> None:
    result = invoke(BudgetAdmin(fail=UnavailableError("down")), "budgets")
    assert result.exit_code == 3
