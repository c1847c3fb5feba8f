"""The `faregate` admin CLI: apply configuration, inspect the catalog, sidecars, spend and
budgets, decide approvals, explain a decision.

Wiring only: click commands call an Admin client (or, for `explain`, a sidecar's
Router) and print `clients.views` as rich tables or JSON. The clients come from
`CliContext.admin_factory` and `router_factory`, so tests pass fakes through `obj=`.
Exit codes: 0 ok, 1 rejected by the server, 2 bad usage (including a missing file),
3 control plane (or sidecar) unreachable. Must not import the servers.
"""

from __future__ import annotations

from pathlib import Path

import click

from clients.cli_approvals import approvals
from clients.cli_budgets import budgets, leases
from clients.cli_context import (
    DEFAULT_CONTROLPLANE,
    EXIT_REJECTED,
    EXIT_USAGE,
    GROUP_BY,
    AdminApi,
    CliContext,
    RouterApi,
    admin_session,
    author,
    output_console,
    show,
)
from clients.cli_explain import explain
from clients.durations import DurationError, parse_window
from clients.errors import InvalidArgumentError
from clients.views import (
    apply_summary,
    apply_view,
    capabilities_view,
    models_view,
    revisions_view,
    sidecars_view,
    spend_view,
    tenants_view,
)

__all__ = ["AdminApi", "CliContext", "RouterApi", "cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--controlplane",
    envvar="FAREGATE_CONTROLPLANE",
    default=DEFAULT_CONTROLPLANE,
    show_default=True,
    metavar="HOST:PORT",
    help="Admin API address of the control plane (env FAREGATE_CONTROLPLANE).",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Tables for people, JSON (integer nano-USD, epoch ms) for scripts.",
)
@click.pass_context
def cli(ctx: click.Context, controlplane: str, output: str) -> None:
    """Operate Faregate: apply configuration, inspect models, sidecars and spend,
    decide approvals and explain decisions.

    \b
    Examples:
      faregate apply -f examples/faregate.yaml --dry-run
      faregate get sidecars
      faregate spend --window 24h --by team
      faregate budgets
      faregate approvals list
      faregate explain summarization --sidecar 127.0.0.1:7401 --risk high
      faregate -o json get models | jq '.[].name'
    """
    settings = ctx.ensure_object(CliContext)
    settings.controlplane = controlplane
    settings.output = output


@cli.command()
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    metavar="FILE",
    help="The whole configuration, as YAML (models, capabilities, tenants, ...).",
)
@click.option("--dry-run", is_flag=True, help="Validate and show the changes; store nothing.")
@click.pass_obj
def apply(ctx: CliContext, path: str, dry_run: bool) -> None:
    """Validate a configuration file and publish it as a new revision.

    The file is applied whole: every problem is listed as FILE:LINE: path: message and
    one problem rejects the whole file, so nothing is ever half applied. Sidecars pick
    up the new snapshot within a second.

    \b
    Examples:
      faregate apply -f examples/faregate.yaml --dry-run   # what would change
      faregate apply -f examples/faregate.yaml
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        click.echo(f"faregate: no such file: {path}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from None
    except (OSError, UnicodeDecodeError) as error:
        click.echo(f"faregate: cannot read {path}: {error}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from None
    with admin_session(ctx) as admin:
        try:
            result = admin.apply_config(text, path, dry_run=dry_run, author=author())
        except InvalidArgumentError as error:
            click.echo(f"faregate: {path} was rejected; nothing was applied:", err=True)
            for line in error.lines:
                click.echo(f"  {line}", err=True)
            raise click.exceptions.Exit(EXIT_REJECTED) from None
    if result.changes or ctx.output == "json":
        show(ctx, apply_view(result), after=apply_summary(result))
    else:
        output_console().print(apply_summary(result))


@cli.group()
def get() -> None:
    """Show what the control plane serves: models, capabilities, tenants, sidecars,
    revisions and budget leases.

    \b
    Examples:
      faregate get models
      faregate get sidecars          # who runs which snapshot version
      faregate get leases            # who holds how much of which budget
      faregate -o json get revisions
    """


@get.command()
@click.pass_obj
def models(ctx: CliContext) -> None:
    """The model catalog with prices in USD per million tokens.

    \b
    Example:
      faregate get models
    """
    with admin_session(ctx) as admin:
        snapshot = admin.get_snapshot()
    show(ctx, models_view(snapshot))


@get.command()
@click.pass_obj
def capabilities(ctx: CliContext) -> None:
    """Capabilities, their candidate models and routing strategy.

    \b
    Example:
      faregate get capabilities
    """
    with admin_session(ctx) as admin:
        snapshot = admin.get_snapshot()
    show(ctx, capabilities_view(snapshot))


@get.command()
@click.pass_obj
def tenants(ctx: CliContext) -> None:
    """Tenants and teams with the cost centre their spend is charged to.

    \b
    Example:
      faregate get tenants
    """
    with admin_session(ctx) as admin:
        snapshot = admin.get_snapshot()
    show(ctx, tenants_view(snapshot))


@get.command()
@click.pass_obj
def sidecars(ctx: CliContext) -> None:
    """Every sidecar the control plane knows: connected, which version it runs, last NACK.

    A sidecar not on the current version is marked; its last NACK says why it refused
    a snapshot (it keeps serving the last good one).

    \b
    Example:
      faregate get sidecars
    """
    with admin_session(ctx) as admin:
        listing = admin.list_sidecars()
    show(ctx, sidecars_view(listing, now_ms=int(ctx.clock() * 1000)))


@get.command()
@click.option("--limit", default=20, show_default=True, help="How many, newest first.")
@click.pass_obj
def revisions(ctx: CliContext, limit: int) -> None:
    """Configuration revisions: when, who, from which file, what they contain.

    \b
    Example:
      faregate get revisions --limit 5
    """
    with admin_session(ctx) as admin:
        listed = admin.list_revisions(limit)
    show(ctx, revisions_view(listed))


def _window(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return parse_window(value)
    except DurationError as error:
        raise click.BadParameter(str(error)) from None


@cli.command()
@click.option(
    "--window",
    "window_ms",
    default="24h",
    show_default=True,
    callback=_window,
    metavar="DURATION",
    help="How far back: 30m, 24h, 7d, 1d12h (units s, m, h, d), or 'all'.",
)
@click.option(
    "--by",
    "group_by",
    type=click.Choice(GROUP_BY),
    default="capability",
    show_default=True,
    help="The dimension to group the ledger by.",
)
@click.pass_obj
def spend(ctx: CliContext, window_ms: int, group_by: str) -> None:
    """Settled spend from the ledger: cost, requests, tokens, share and cost per 1k requests.

    \b
    Examples:
      faregate spend                         # last 24 h by capability
      faregate spend --window 7d --by team   # chargeback view
      faregate spend --window all --by model -o json
    """
    with admin_session(ctx) as admin:
        report = admin.spend(window_ms, group_by)
    show(ctx, spend_view(report))


get.add_command(leases)
cli.add_command(budgets)
cli.add_command(approvals)
cli.add_command(explain)


def main() -> None:
    cli(prog_name="faregate")


if __name__ == "__main__":
    main()
