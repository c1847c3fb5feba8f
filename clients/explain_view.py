"""What `faregate explain` shows: a dry-run decision as lines for people, or as JSON.

Pure: takes a `RouteResult`; must not import gRPC, click, the wire types or the servers.
"""

from __future__ import annotations

from typing import Any

from clients.router_results import RouteResult
from faregate.model import Action
from faregate.pricing import format_usd


def route_data(result: RouteResult) -> dict[str, Any]:
    return {
        "decision_id": result.decision_id,
        "action": result.action.value,
        "allowed": result.allowed,
        "model": result.model,
        "provider": result.provider,
        "tier": result.tier,
        "estimated_cost_nanos": result.estimated_cost_nanos,
        "reserved_cost_nanos": result.reserved_cost_nanos,
        "max_output_tokens": result.max_output_tokens,
        "rules": [{"rule": r.rule, "detail": r.detail} for r in result.rules],
        "config_version": result.config_version,
        "approval_id": result.approval_id,
        "retry_after_ms": result.retry_after_ms,
        "reason": result.reason,
    }


def explain_lines(result: RouteResult, capability: str, sidecar: str) -> list[str]:
    """The decision a dry run got, for a person: verdict, model, money, then why."""
    verdict = result.action.value.replace("_", " ").upper()
    lines = [f"Dry run of {capability} on sidecar {sidecar} (nothing reserved or requested)"]
    lines.append(f"  action:          {verdict}")
    if result.model:
        where = ", ".join(
            f"{k} {v}" for k, v in (("provider", result.provider), ("tier", result.tier)) if v
        )
        lines.append(f"  model:           {result.model}" + (f" ({where})" if where else ""))
    lines.append(f"  estimated cost:  {format_usd(result.estimated_cost_nanos, 6)} (worst case)")
    if result.max_output_tokens:
        lines.append(f"  max output:      {result.max_output_tokens:,} tokens")
    if result.action is Action.APPROVAL_REQUIRED:
        lines.append("  approval:        a real request would wait for an operator's approval")
    if result.retry_after_ms:
        lines.append(f"  retry after:     {result.retry_after_ms:,} ms")
    if result.reason:
        lines.append(f"  reason:          {result.reason}")
    lines.append(f"  config version:  {result.config_version or '(none)'}")
    if not result.rules:
        lines.append("  rules fired:     none")
    else:
        lines.append("  rules fired:")
        lines.extend(
            f"    {i}. {r.rule}" + (f": {r.detail}" if r.detail else "")
            for i, r in enumerate(result.rules, 1)
        )
    return lines
