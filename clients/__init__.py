"""Faregate's clients: `RouterClient`/`AsyncRouterClient` for services, `AdminClient` for operators.

The public surface is `__all__`; everything else is an implementation detail. The
`faregate` CLI lives in `clients.cli`. Must not import the servers (`sidecar`,
`controlplane`).
"""

from clients.admin_client import AdminClient
from clients.errors import FaregateError
from clients.router_client import AsyncRouterClient, RouterClient
from clients.router_results import ReportResult, RouteResult

__all__ = [
    "AdminClient",
    "AsyncRouterClient",
    "FaregateError",
    "ReportResult",
    "RouteResult",
    "RouterClient",
]
