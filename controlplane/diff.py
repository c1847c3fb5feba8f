"""What applying a snapshot changes, entity by entity, for `faregate apply --dry-run`.

Compares two snapshots by name within each kind (model, capability, tenant, budget)
and as a whole for the opaque sections (guardrails, governance). A change's detail
names the fields that differ, old → new, with money shown in USD.

Pure: must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from faregate.model import Snapshot
from faregate.pricing import format_usd

ADD = "add"
CHANGE = "change"
REMOVE = "remove"

# Derived from the price itself: a changed price is already reported field by field.
_IGNORED_FIELDS = frozenset({"price.version"})
_MAX_DETAIL_FIELDS = 6


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # model | capability | tenant | budget | guardrails | governance
    name: str
    op: str  # add | change | remove
    detail: str = ""


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten to `a.b[0].c` paths; lists of scalars stay whole (they read better)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(_leaves(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _show(path: str, value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, int) and not isinstance(value, bool):
        if path.endswith("_nanos_per_mtok"):
            return f"{format_usd(value)}/Mtok"
        if path.endswith("_nanos"):
            return format_usd(value)
    return json.dumps(value, sort_keys=True)


def _field_changes(old: Any, new: Any) -> str:
    before, after = _leaves(_plain(old)), _leaves(_plain(new))
    paths = [
        path
        for path in sorted(before.keys() | after.keys())
        if path not in _IGNORED_FIELDS and before.get(path) != after.get(path)
    ]
    parts = [
        f"{path.removesuffix('_nanos_per_mtok')}: "
        f"{_show(path, before.get(path))} -> {_show(path, after.get(path))}"
        for path in paths[:_MAX_DETAIL_FIELDS]
    ]
    if len(paths) > _MAX_DETAIL_FIELDS:
        parts.append(f"and {len(paths) - _MAX_DETAIL_FIELDS} more")
    return "; ".join(parts)


def _summary(kind: str, item: Any) -> str:
    if kind == "model":
        price = item.price
        return (
            f"{item.provider} {item.tier} {item.locality}, "
            f"{format_usd(price.input_nanos_per_mtok)}/{format_usd(price.output_nanos_per_mtok)}"
            " per Mtok in/out"
        )
    if kind == "capability":
        return f"{item.routing.strategy} over {', '.join(item.candidates)}"
    if kind == "tenant":
        return f"teams: {', '.join(t.name for t in item.teams) or '(none)'}"
    if kind == "budget":
        return f"{format_usd(item.limit_nanos)} per {item.period}"
    return ""


def _named(kind: str, old: Sequence[Any], new: Sequence[Any]) -> list[Change]:
    before = {item.name: item for item in old}
    after = {item.name: item for item in new}
    changes: list[Change] = []
    for name, item in after.items():
        if name not in before:
            changes.append(Change(kind, name, ADD, _summary(kind, item)))
        elif before[name] != item:
            changes.append(Change(kind, name, CHANGE, _field_changes(before[name], item)))
    changes.extend(
        Change(kind, name, REMOVE, _summary(kind, item))
        for name, item in before.items()
        if name not in after
    )
    return changes


def _section(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    if _plain(old) == _plain(new):
        return []
    if not old:
        return [Change(kind, kind, ADD, f"keys: {', '.join(sorted(new))}")]
    if not new:
        return [Change(kind, kind, REMOVE, "")]
    changed = sorted(k for k in old.keys() | new.keys() if _plain(old.get(k)) != _plain(new.get(k)))
    return [Change(kind, kind, CHANGE, f"changed: {', '.join(changed)}")]


def diff_snapshots(old: Snapshot | None, new: Snapshot) -> tuple[Change, ...]:
    """Changes that turn `old` (None: nothing applied yet) into `new`, in a stable order."""
    changes = [
        *_named("model", old.models if old else (), new.models),
        *_named("capability", old.capabilities if old else (), new.capabilities),
        *_named("tenant", old.tenants if old else (), new.tenants),
        *_named("budget", old.budgets if old else (), new.budgets),
        *_section("guardrails", old.guardrails if old else {}, new.guardrails),
        *_section("governance", old.governance if old else {}, new.governance),
    ]
    return tuple(changes)
