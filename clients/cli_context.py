"""What every `faregate` command shares: the settings, the clients and how output is shown.

`CliContext` carries the global options and the client factories (tests pass fakes
through click's `obj=`); `admin_session` and `router_session` turn transport failures
into one clear line and an exit code; `show` prints a `View` as a table or JSON.
Must not import the servers.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import click
from rich.console import Console

from clients.admin_client import AdminClient
from clients.admin_results import (
    ApplyResult,
    Approval,
    ApprovalDecision,
    BudgetStatus,
    LeaseInfo,
    RevisionInfo,
    SidecarList,
    SpendReport,
)
from clients.errors import DeadlineExceededError, FaregateError, UnavailableError
from clients.router_client import RouterClient
from clients.router_results import RouteResult
from clients.views import View, render
from faregate.model import Complexity, Priority, RiskLevel, Sensitivity, Snapshot

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
    def list_budgets(self) -> list[BudgetStatus]: ...
    def list_leases(self, include_closed: bool = False) -> list[LeaseInfo]: ...
    def list_approvals(self, include_decided: bool = False) -> list[Approval]: ...
    def decide_approval(
        self,
        approval_id: str,
        *,
        approve: bool,
        decided_by: str,
        reason: str = "",
        valid_for_ms: int = 0,
        max_uses: int = 0,
    ) -> ApprovalDecision: ...
    def close(self) -> None: ...


class RouterApi(Protocol):
    """What `faregate explain` needs from a sidecar (`RouterClient`, or a fake)."""

    def route(
        self,
        capability: str,
        *,
        tenant: str = "",
        team: str = "",
        sensitivity: Sensitivity | str = Sensitivity.INTERNAL,
        risk: RiskLevel | str = RiskLevel.LOW,
        priority: Priority | str = Priority.INTERACTIVE,
        complexity: Complexity | str | None = None,
        input_tokens: int = 0,
        max_output_tokens: int = 0,
        labels: Mapping[str, str] | None = None,
        required_compliance_tags: Iterable[str] = (),
        dry_run: bool = False,
    ) -> RouteResult: ...
    def close(self) -> None: ...


@dataclass
class CliContext:
    admin_factory: Callable[[str], AdminApi] = AdminClient
    router_factory: Callable[[str], RouterApi] = RouterClient
    clock: Callable[[], float] = time.time
    controlplane: str = DEFAULT_CONTROLPLANE
    output: str = "table"


@contextmanager
def admin_session(ctx: CliContext) -> Iterator[AdminApi]:
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


@contextmanager
def router_session(ctx: CliContext, address: str) -> Iterator[RouterApi]:
    """A sidecar's Router client, its failures ending the command like `_admin`'s."""
    router = ctx.router_factory(address)
    try:
        yield router
    except (UnavailableError, DeadlineExceededError) as error:
        why = "no answer in time" if isinstance(error, DeadlineExceededError) else "no connection"
        click.echo(
            f"faregate: cannot reach the sidecar at {address} ({why}); is it running? "
            "Pass its --listen address (host:port or unix:///path) to --sidecar.",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_UNREACHABLE) from None
    except FaregateError as error:
        click.echo(f"faregate: the sidecar refused: {error}", err=True)
        raise click.exceptions.Exit(EXIT_REJECTED) from None
    finally:
        router.close()


def output_console() -> Console:
    """A terminal gets tables at its own width; a pipe or file gets them unwrapped,
    so that `grep` and `awk` see whole names."""
    terminal = Console()
    return terminal if terminal.is_terminal else Console(width=200)


def show(ctx: CliContext, view: View, after: str = "") -> None:
    if ctx.output == "json":
        click.echo(json.dumps(view.data, indent=2, sort_keys=False))
        return
    out = output_console()
    if view.rows or view.total is not None:
        out.print(render(view))
    else:
        out.print(f"{view.title}: none")
    if after:
        out.print(after)


def author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "")
