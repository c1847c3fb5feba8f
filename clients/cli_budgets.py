"""`faregate budgets` and `faregate get leases`: where budgets stand and who holds them.

Wiring only, like `clients.cli`: calls the Admin client, prints
`clients.budget_views`. Must not import the servers.
"""

from __future__ import annotations

import click

from clients.budget_views import budgets_view, leases_view
from clients.cli_context import CliContext, admin_session, show


@click.command()
@click.pass_obj
def budgets(ctx: CliContext) -> None:
    """Every budget in its current period: limit, committed spend, what leases hold,
    what is left, the burn rate over the last hour and when, at that rate, it runs out.

    Committed is usage the ledger has applied (plus remainders forfeited by crashed
    sidecars); outstanding is what sidecars' leases still hold; remaining is what no
    one holds. Budgets past a soft threshold are highlighted; late usage (arrived
    after its lease expired) and forfeits are noted below the table.

    \b
    Examples:
      faregate budgets
      faregate -o json budgets | jq '.[] | {name, committed_nanos, remaining_nanos}'
    """
    with admin_session(ctx) as admin:
        listed = admin.list_budgets()
    show(ctx, budgets_view(listed, now_ms=int(ctx.clock() * 1000)))


@click.command()
@click.option(
    "--all", "include_closed", is_flag=True, help="Closed, forfeited and expired leases too."
)
@click.pass_obj
def leases(ctx: CliContext, include_closed: bool) -> None:
    """Budget leases by sidecar: granted, applied by the ledger, still held, expiry.

    \b
    Examples:
      faregate get leases
      faregate get leases --all
    """
    with admin_session(ctx) as admin:
        listed = admin.list_leases(include_closed)
    show(ctx, leases_view(listed, int(ctx.clock() * 1000), include_closed=include_closed))
