"""`faregate explain`: how a sidecar would decide a request, asked as a dry run.

Talks to one sidecar's Router (never the control plane) with `dry_run=true`, so
nothing is reserved, throttled or sent for approval, and prints
`clients.explain_view`. Must not import the servers.
"""

from __future__ import annotations

import json

import click

from clients.cli_context import CliContext, output_console, router_session
from clients.explain_view import explain_lines, route_data
from faregate.model import Complexity, Priority, RiskLevel, Sensitivity


def _labels(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    labels = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        labels[key] = value
    return labels


def _choice(
    enum: type[Sensitivity] | type[RiskLevel] | type[Priority] | type[Complexity],
) -> click.Choice[str]:
    return click.Choice([member.value for member in enum if member.value])


@click.command()
@click.argument("capability")
@click.option(
    "--sidecar",
    required=True,
    metavar="ADDR",
    help="The sidecar's Router address: HOST:PORT or unix:///PATH.",
)
@click.option("--tenant", default="", help="Tenant the request is for.")
@click.option("--team", default="", help="Team within the tenant.")
@click.option("--sensitivity", type=_choice(Sensitivity), default="internal", show_default=True)
@click.option("--risk", type=_choice(RiskLevel), default="low", show_default=True)
@click.option("--priority", type=_choice(Priority), default="interactive", show_default=True)
@click.option("--complexity", type=_choice(Complexity), default=None)
@click.option("--input-tokens", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--max-output-tokens",
    type=click.IntRange(min=0),
    default=0,
    help="0: the capability's default.",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    callback=_labels,
    metavar="KEY=VALUE",
    help="A request label (repeatable).",
)
@click.option(
    "--compliance",
    "compliance",
    multiple=True,
    metavar="TAG",
    help="A compliance tag the model must carry (repeatable).",
)
@click.pass_obj
def explain(
    ctx: CliContext,
    capability: str,
    sidecar: str,
    tenant: str,
    team: str,
    sensitivity: str,
    risk: str,
    priority: str,
    complexity: str | None,
    input_tokens: int,
    max_output_tokens: int,
    labels: dict[str, str],
    compliance: tuple[str, ...],
) -> None:
    """Ask a sidecar how it would decide a request, without any effect.

    A dry run: the sidecar decides as for real but reserves no budget, takes no
    throttle tokens and raises no approval request. Prints the action, model,
    estimated cost, every rule that fired and the config version. Talks to the
    sidecar only; the control plane is not needed.

    \b
    Examples:
      faregate explain summarization --sidecar 127.0.0.1:7401 --tenant acme --team risk
      faregate explain analysis --sidecar unix:///run/faregate.sock --risk high \\
          --input-tokens 50000 --label ticket=T-1
    """
    with router_session(ctx, sidecar) as router:
        result = router.route(
            capability,
            tenant=tenant,
            team=team,
            sensitivity=sensitivity,
            risk=risk,
            priority=priority,
            complexity=complexity,
            input_tokens=input_tokens,
            max_output_tokens=max_output_tokens,
            labels=labels,
            required_compliance_tags=compliance,
            dry_run=True,
        )
    if ctx.output == "json":
        click.echo(json.dumps(route_data(result), indent=2))
        return
    out = output_console()
    for line in explain_lines(result, capability, sidecar):
        out.print(line, markup=False, highlight=False)
