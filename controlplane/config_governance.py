"""The `governance` section of the configuration → `faregate.policy.Governance`.

Implements the schema in docs/policy.md ("Governance"): `cost_bands` (USD upper
bounds of the low and medium bands, low below medium), the risk x band `matrix` of
`allow | approval | deny`, the durations `approval_ttl` and `default_grant` (`30m`,
`1h`, `2d`, `1h30m`) and `default_max_uses`. Whatever the section leaves out keeps
its default, cell by cell for the matrix, so an empty section is the documented
default policy. Problems are recorded on the shared `FieldReader` with their line.

Pure: must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from controlplane.config_fields import INT64_MAX, FieldReader
from controlplane.config_source import Node, join_path
from faregate.model import RiskLevel
from faregate.policy import (
    COST_BANDS,
    DEFAULT_BAND_LIMITS_NANOS,
    DEFAULT_MATRIX,
    GOVERNANCE_ACTIONS,
    Governance,
)
from faregate.pricing import format_usd

RISKS = tuple(level.value for level in RiskLevel)
_KEYS = ("cost_bands", "matrix", "approval_ttl", "default_grant", "default_max_uses")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"(?:\d+[smhd])+")
_DURATION_PART = re.compile(r"(\d+)([smhd])")


def parse_duration_ms(text: str) -> int | None:
    """`30m`, `1h`, `2d`, `1h30m` in milliseconds; None if not such a duration."""
    cleaned = text.strip().lower()
    if not _DURATION.fullmatch(cleaned):
        return None
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION_PART.findall(cleaned))


def read_governance(reader: FieldReader, node: Node | None) -> Governance | None:
    """The whole section (absent or empty: the defaults); None if anything is wrong."""
    if node is None or node.value is None:
        return Governance()
    fields = reader.mapping(node, "governance", (), _KEYS)
    if fields is None:
        return None
    before = len(reader.errors)
    bands = _cost_bands(reader, fields.get("cost_bands"), "governance.cost_bands")
    matrix = _matrix(reader, fields.get("matrix"), "governance.matrix")
    defaults = Governance()
    ttl = _duration(reader, fields.get("approval_ttl"), "governance.approval_ttl")
    grant = _duration(reader, fields.get("default_grant"), "governance.default_grant")
    max_uses = reader.positive_int(fields.get("default_max_uses"), "governance.default_max_uses")
    if len(reader.errors) != before:
        return None
    return Governance(
        band_limits_nanos=bands,
        matrix=matrix,
        approval_ttl_ms=ttl or defaults.approval_ttl_ms,
        default_grant_ms=grant or defaults.default_grant_ms,
        default_max_uses=max_uses or defaults.default_max_uses,
    )


def _cost_bands(reader: FieldReader, node: Node | None, path: str) -> tuple[int, int]:
    fields = reader.mapping(node, path, (), ("low", "medium"))
    if fields is None or node is None:
        return DEFAULT_BAND_LIMITS_NANOS
    low = reader.usd(fields.get("low"), join_path(path, "low"))
    medium = reader.usd(fields.get("medium"), join_path(path, "medium"))
    default_low, default_medium = DEFAULT_BAND_LIMITS_NANOS
    low = default_low if "low" not in fields else low
    medium = default_medium if "medium" not in fields else medium
    if low is None or medium is None:
        return DEFAULT_BAND_LIMITS_NANOS
    if low >= medium:
        # Name the default when one side was left out: that is the surprising half.
        shown = [
            format_usd(value) + ("" if key in fields else ", the default")
            for key, value in (("low", low), ("medium", medium))
        ]
        reader.error(node.line, path, f"low ({shown[0]}) must be below medium ({shown[1]})")
    return low, medium


def _matrix(reader: FieldReader, node: Node | None, path: str) -> Mapping[str, Mapping[str, str]]:
    rows = {risk: dict(row) for risk, row in DEFAULT_MATRIX.items()}
    fields = reader.free_mapping(node, path)
    if fields is None or node is None:
        return DEFAULT_MATRIX
    for risk, row_node in fields.items():
        risk_path = join_path(path, risk)
        if risk not in RISKS:
            reader.error(
                node.key_lines.get(risk, node.line),
                risk_path,
                f"unknown risk level; expected one of {', '.join(RISKS)}",
            )
            continue
        cells = reader.mapping(row_node, risk_path, (), COST_BANDS)
        for band, cell in (cells or {}).items():
            action = reader.choice(cell, join_path(risk_path, band), GOVERNANCE_ACTIONS)
            if action is not None:
                rows[risk][band] = action
    return MappingProxyType({risk: MappingProxyType(row) for risk, row in rows.items()})


def _duration(reader: FieldReader, node: Node | None, path: str) -> int | None:
    if node is None:
        return None
    text = node.value
    milliseconds = parse_duration_ms(text) if isinstance(text, str) else None
    if milliseconds is None:
        # A bare number is the likely mistake; its unit would be a guess, so ask for one.
        shown = repr(text) if isinstance(text, str) else str(text)
        reader.error(node.line, path, f"{shown} is not a duration such as 30m, 1h, 2d or 1h30m")
        return None
    if milliseconds == 0:
        reader.error(node.line, path, "must be longer than zero")
        return None
    if milliseconds > INT64_MAX:
        reader.error(node.line, path, "is too long")
        return None
    return milliseconds
