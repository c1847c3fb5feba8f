"""`faregate approvals`: list the requests waiting for an operator, approve or deny them.

Wiring only, like `clients.cli`: calls the Admin client, prints
`clients.approval_views`. The decider recorded is the OS user running the command.
Must not import the servers.
"""

from __future__ import annotations

import json

import click

from clients.admin_results import ApprovalDecision
from clients.approval_views import approvals_view, decision_data, decision_summary
from clients.cli_context import CliContext, admin_session, author, output_console, show
from clients.durations import DurationError, parse_duration


@click.group()
def approvals() -> None:
    """Requests waiting for an operator: list them, approve or deny them.

    A sidecar answers APPROVAL_REQUIRED when governance says a request (risk x
    estimated cost) needs a person's say; the decision reaches every sidecar within a
    second and the service's retry runs (or is refused).

    \b
    Examples:
      faregate approvals list
      faregate approvals approve ap-3f2a --for 1h --max-uses 3
      faregate approvals deny ap-3f2a --reason "use the summary model"
    """


@approvals.command("list")
@click.option("--all", "include_decided", is_flag=True, help="Decided and expired ones too.")
@click.pass_obj
def list_approvals(ctx: CliContext, include_decided: bool) -> None:
    """Pending approvals (with --all: every approval), newest first.

    Shows what each request would run (capability, tenant/team, model), its estimated
    worst-case cost and risk, when it was requested, who decided it and when the
    request or the grant expires.

    \b
    Examples:
      faregate approvals list
      faregate approvals list --all
      faregate -o json approvals list | jq '.[].approval_id'
    """
    with admin_session(ctx) as admin:
        listed = admin.list_approvals(include_decided)
    now_ms = int(ctx.clock() * 1000)
    show(ctx, approvals_view(listed, now_ms, include_decided=include_decided))


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int:
    if value is None:
        return 0
    try:
        return parse_duration(value)
    except DurationError as error:
        raise click.BadParameter(str(error)) from None


def _decided(ctx: CliContext, decision: ApprovalDecision) -> None:
    if ctx.output == "json":
        click.echo(json.dumps(decision_data(decision), indent=2))
    else:
        output_console().print(decision_summary(decision))


@approvals.command()
@click.argument("approval_id", metavar="ID")
@click.option(
    "--for",
    "valid_for_ms",
    callback=_duration,
    metavar="DURATION",
    help="How long the approval stays valid: 30m, 1h, 2d (default: governance default_grant).",
)
@click.option(
    "--max-uses",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="How many calls it allows (default: governance default_max_uses).",
)
@click.pass_obj
def approve(ctx: CliContext, approval_id: str, valid_for_ms: int, max_uses: int | None) -> None:
    """Approve a pending request; the service's retry with its approval id (or the same
    idempotency key) then runs, within the time and uses granted.

    \b
    Examples:
      faregate approvals approve ap-3f2a
      faregate approvals approve ap-3f2a --for 1h --max-uses 3
    """
    with admin_session(ctx) as admin:
        decision = admin.decide_approval(
            approval_id,
            approve=True,
            decided_by=author(),
            valid_for_ms=valid_for_ms,
            max_uses=max_uses or 0,
        )
    _decided(ctx, decision)


@approvals.command()
@click.argument("approval_id", metavar="ID")
@click.option(
    "--reason",
    required=True,
    metavar="TEXT",
    help="Why, for the requester and the audit trail (required).",
)
@click.pass_obj
def deny(ctx: CliContext, approval_id: str, reason: str) -> None:
    """Deny a pending request; the service's retry is refused with the reason.

    \b
    Example:
      faregate approvals deny ap-3f2a --reason "use the summary model"
    """
    if not reason.strip():
        raise click.BadParameter("must not be empty", param_hint="--reason")
    with admin_session(ctx) as admin:
        decision = admin.decide_approval(
            approval_id, approve=False, decided_by=author(), reason=reason
        )
    _decided(ctx, decision)
