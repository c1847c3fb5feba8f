"""The `faregate` admin CLI: apply configuration, inspect the catalog, sidecars and spend.

Wiring only: click commands call an Admin client and print `clients.views` as rich
tables or JSON. The client comes from `CliContext.admin_factory`, so tests pass a fake
one through `obj=`. Exit codes: 0 ok, 1 rejected by the server, 2 bad usage (including
a missing file), 3 control plane unreachable. Must not import the servers.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import click
from rich.console import Console

from clients.admin_client import AdminClient
from clients.admin_results import ApplyResult, RevisionInfo, SidecarList, SpendReport
from clients.durations import DurationError, parse_window
from clients.errors import (
    DeadlineExceededError,
    FaregateError,
    InvalidArgumentError,
    UnavailableError,
)
from clients.views import (
    View,
    apply_summary,
    apply_view,
    capabilities_view,
    models_view,
    render,
    revisions_view,
    sidecars_view,
    spend_view,
    tenants_view,
)
from faregate.model import Snapshot

DEFAULT_CONTROLPLANE = "127.0.0.1:7400"
GROUP_BY = ("capability", "model", "team", "tenant", "service", "provider")
EXIT_REJECTED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class AdminApi(Protocol):
    """What the CLI needs from an Admin client (`AdminClient`, or a fake in tests)."""

    def apply_config(
        self, yaml_text: str, source_name: str = "", *, dry_run: bool = False, author: str = ""
    ) -> ApplyResult: ...
    def list_revisions(self, limit: int = 0) -> list[RevisionInfo]: ...
    def get_snapshot(self, revision: int = 0) -> Snapshot: ...
    def list_sidecars(self) -> SidecarList: ...
    def spend(self, window_ms: int = 0, group_by: str = "capability") -> SpendReport: ...
    def close(self) -> None: ...


@dataclass
class CliContext:
    admin_factory: Callable[[str], AdminApi] = AdminClient
    clock: Callable[[], float] = time.time
    controlplane: str = DEFAULT_CONTROLPLANE
    output: str = "table"


@contextmanager
def _admin(ctx: CliContext) -> Iterator[AdminApi]:
    """An Admin client whose transport failures end the command with one clear line."""
    admin = ctx.admin_factory(ctx.controlplane)
    try:
        yield admin
    except (UnavailableError, DeadlineExceededError) as error:
        why = "no answer in time" if isinstance(error, DeadlineExceededError) else "no connection"
        click.echo(
            f"faregate: cannot reach the control plane at {ctx.controlplane} ({why}); "
            "is it running? Set --controlplane or FAREGATE_CONTROLPLANE.",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_UNREACHABLE) from None
    except FaregateError as error:
        click.echo(f"faregate: the control plane refused: {error}", err=True)
        raise click.exceptions.Exit(EXIT_REJECTED) from None
    finally:
        admin.close()


def _console() -> Console:
    """A terminal gets tables at its own width; a pipe or file gets them unwrapped,
    so that `grep` and `awk` see whole names."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    return console


def _show(ctx: CliContext, view: View, after: str = "") -> None:
    if ctx.output == "json":
        click.echo(json.dumps(view.data, indent=2, sort_keys=False))
        return
    console = _console()
    if view.rows or view.total is not None:
        console.print(render(view))
    else:
        console.print(f"{view.title}: none")
    if after:
        console.print(after)


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
    """Operate Faregate: apply configuration, inspect models, sidecars and spend.

    \b
    Examples:
      faregate apply -f examples/faregate.yaml --dry-run
      faregate get sidecars
      faregate spend --window 24h --by team
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
    with _admin(ctx) as admin:
        try:
            result = admin.apply_config(text, path, dry_run=dry_run, author=_author())
        except InvalidArgumentError as error:
            click.echo(f"faregate: {path} was rejected; nothing was applied:", err=True)
            for line in error.lines:
                click.echo(f"  {line}", err=True)
            raise click.exceptions.Exit(EXIT_REJECTED) from None
    if result.changes or ctx.output == "json":
        _show(ctx, apply_view(result), after=apply_summary(result))
    else:
        _console().print(apply_summary(result))


def _author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "")


@cli.group()
def get() -> None:
    """Show what the control plane serves: models, capabilities, tenants, sidecars, revisions.

    \b
    Examples:
      faregate get models
      faregate get sidecars          # who runs which snapshot version
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
    with _admin(ctx) as admin:
        snapshot = admin.get_snapshot()
    _show(ctx, models_view(snapshot))


@get.command()
@click.pass_obj
def capabilities(ctx: CliContext) -> None:
    """Capabilities, their candidate models and routing strategy.

    \b
    Example:
      faregate get capabilities
    """
    with _admin(ctx) as admin:
        snapshot = admin.get_snapshot()
    _show(ctx, capabilities_view(snapshot))


@get.command()
@click.pass_obj
def tenants(ctx: CliContext) -> None:
    """Tenants and teams with the cost centre their spend is charged to.

    \b
    Example:
      faregate get tenants
    """
    with _admin(ctx) as admin:
        snapshot = admin.get_snapshot()
    _show(ctx, tenants_view(snapshot))


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
    with _admin(ctx) as admin:
        listing = admin.list_sidecars()
    _show(ctx, sidecars_view(listing, now_ms=int(ctx.clock() * 1000)))


@get.command()
@click.option("--limit", default=20, show_default=True, help="How many, newest first.")
@click.pass_obj
def revisions(ctx: CliContext, limit: int) -> None:
    """Configuration revisions: when, who, from which file, what they contain.

    \b
    Example:
      faregate get revisions --limit 5
    """
    with _admin(ctx) as admin:
        listed = admin.list_revisions(limit)
    _show(ctx, revisions_view(listed))


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
    with _admin(ctx) as admin:
        report = admin.spend(window_ms, group_by)
    _show(ctx, spend_view(report))


def main() -> None:
    cli(prog_name="faregate")


if __name__ == "__main__":
    main()
