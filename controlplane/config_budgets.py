"""The `budgets` section of the configuration: one entry → one `faregate.model.Budget`.

Budgets are reserved in docs/architecture.md (their allocator comes with a later
issue), but a snapshot carries them as `Budget` values, so an entry is read with the
field names of `faregate.model.Budget`; the two amounts are written in USD like every
price (`limit`, `offline_allowance`) and stored as nanos. What a budget scopes
(tenant, team, capability, model, tier) must name something the file declares.

Pure: must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controlplane.config_fields import FieldReader
from controlplane.config_source import Node, join_path
from faregate.model import Budget

PERIODS = ("day", "week", "month", "fixed")
MODES = ("strict", "estimate")
OFFLINE_POLICIES = ("deny", "allowance")

_REQUIRED = ("name", "limit")
_OPTIONAL = (
    "period",
    "tenant",
    "team",
    "capability",
    "model",
    "tier",
    "labels",
    "soft_thresholds",
    "mode",
    "offline_policy",
    "offline_allowance",
    "offline_max_duration_ms",
    "time_zone",
)


@dataclass(frozen=True, slots=True)
class BudgetReferences:
    """What the rest of the file declares, for checking a budget's scope."""

    models: Collection[str]
    capabilities: Collection[str]
    tiers: Collection[str]
    tenant_teams: Mapping[str, Collection[str]]


def read_budget(
    reader: FieldReader, node: Node, path: str, refs: BudgetReferences
) -> Budget | None:
    """One budget entry; problems are recorded on `reader` and give None."""
    fields = reader.mapping(node, path, _REQUIRED, _OPTIONAL)
    if fields is None:
        return None
    before = len(reader.errors)

    def text(key: str) -> str:
        return reader.string(fields.get(key), join_path(path, key)) or ""

    def choice(key: str, options: tuple[str, ...], default: str) -> str:
        if key not in fields:
            return default
        return reader.choice(fields[key], join_path(path, key), options) or default

    name = text("name")
    limit = reader.usd(fields.get("limit"), join_path(path, "limit"))
    tenant, team = text("tenant"), text("team")
    capability, model, tier = text("capability"), text("model"), text("tier")
    _check_scope(reader, fields, path, refs, tenant=tenant, team=team)
    for key, value, known in (
        ("capability", capability, refs.capabilities),
        ("model", model, refs.models),
        ("tier", tier, refs.tiers),
    ):
        if value and value not in known:
            reader.error(fields[key].line, join_path(path, key), f"unknown {key} {value!r}")

    thresholds = _thresholds(reader, fields.get("soft_thresholds"), path)
    labels = _labels(reader, fields.get("labels"), join_path(path, "labels"))
    offline_policy = choice("offline_policy", OFFLINE_POLICIES, "deny")
    allowance = reader.usd(fields.get("offline_allowance"), join_path(path, "offline_allowance"))
    duration_path = join_path(path, "offline_max_duration_ms")
    duration = reader.integer(fields.get("offline_max_duration_ms"), duration_path, minimum=0)
    if offline_policy == "allowance" and not (allowance and duration):
        # An allowance with no amount or no time bound would be unbounded or useless.
        reader.error(
            fields["offline_policy"].line,
            join_path(path, "offline_policy"),
            "allowance needs offline_allowance and offline_max_duration_ms above 0",
        )
    time_zone = text("time_zone") or "UTC"
    if "time_zone" in fields and not _known_zone(time_zone):
        reader.error(fields["time_zone"].line, join_path(path, "time_zone"), "unknown time zone")
    period = choice("period", PERIODS, "month")
    mode = choice("mode", MODES, "strict")
    if len(reader.errors) != before or limit is None:
        return None
    return Budget(
        name=name,
        limit_nanos=limit,
        period=period,
        tenant=tenant,
        team=team,
        capability=capability,
        model=model,
        tier=tier,
        labels=MappingProxyType(labels),
        soft_thresholds=thresholds,
        mode=mode,
        offline_policy=offline_policy,
        offline_allowance_nanos=allowance or 0,
        offline_max_duration_ms=duration or 0,
        time_zone=time_zone,
    )


def _check_scope(
    reader: FieldReader,
    fields: Mapping[str, Node],
    path: str,
    refs: BudgetReferences,
    *,
    tenant: str,
    team: str,
) -> None:
    if tenant and tenant not in refs.tenant_teams:
        reader.error(fields["tenant"].line, join_path(path, "tenant"), f"unknown tenant {tenant!r}")
    if team and not tenant:
        reader.error(fields["team"].line, join_path(path, "team"), "a team needs its tenant")
    elif team and tenant in refs.tenant_teams and team not in refs.tenant_teams[tenant]:
        reader.error(
            fields["team"].line, join_path(path, "team"), f"tenant {tenant!r} has no team {team!r}"
        )


def _thresholds(reader: FieldReader, node: Node | None, path: str) -> tuple[float, ...]:
    key_path = join_path(path, "soft_thresholds")
    items = reader.sequence(node, key_path) or ()
    values: list[float] = []
    for i, item in enumerate(items):
        value = reader.fraction(item, join_path(key_path, i))
        if value is None:
            continue
        if values and float(value) <= values[-1]:
            reader.error(item.line, join_path(key_path, i), "thresholds must be ascending")
        # A threshold is a fraction of the limit, not an amount of money.
        values.append(float(value))
    return tuple(values)


def _labels(reader: FieldReader, node: Node | None, path: str) -> dict[str, str]:
    fields = reader.free_mapping(node, path) or {}
    labels: dict[str, str] = {}
    for key, value in fields.items():
        label = reader.string(value, join_path(path, key), empty=True)
        if label is not None:
            labels[key] = label
    return labels


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
