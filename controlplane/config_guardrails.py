"""The `guardrails` section of the configuration → `faregate.policy.Guardrails`.

Implements the schema in docs/policy.md ("Guardrails"): `ceilings`, `blocked` and
`throttles`, each a list of named rules with optional match keys (`capability`,
`tenant`, `team`, `priority`). Every problem is recorded on the shared `FieldReader`
with its line, so one pass reports them all: unknown keys, wrong types, references to
names the file does not declare, duplicate rule names within a list, a blocked path
naming more or less than one of model/tier/provider, a rule with no limit, reserves
outside [0, 1) or out of order. The USD cost ceiling becomes integer nano-USD.

Pure: must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from controlplane.config_fields import FieldReader, Names
from controlplane.config_source import Node, join_path
from faregate.model import Priority
from faregate.policy import DEFAULT_RESERVES, BlockedPath, Ceiling, Guardrails, Match, Throttle

MATCH_KEYS = ("capability", "tenant", "team", "priority")
BLOCK_TARGETS = ("model", "tier", "provider")
# Highest class first: a lower class must keep at least the headroom of a higher one.
PRIORITY_ORDER = (Priority.INTERACTIVE.value, Priority.BATCH.value, Priority.BACKGROUND.value)

Rule = TypeVar("Rule")


@dataclass(frozen=True, slots=True)
class PolicyReferences:
    """What the rest of the file declares, for checking the names a rule uses."""

    capabilities: Collection[str]
    tenant_teams: Mapping[str, Collection[str]]
    models: Collection[str]
    tiers: Collection[str]
    providers: Collection[str]


def read_guardrails(
    reader: FieldReader, node: Node | None, refs: PolicyReferences
) -> Guardrails | None:
    """The whole section (absent or empty: no rules); None if anything in it is wrong."""
    if node is None or node.value is None:
        return Guardrails()
    fields = reader.mapping(node, "guardrails", (), ("ceilings", "blocked", "throttles"))
    if fields is None:
        return None
    before = len(reader.errors)
    rules = _GuardrailRules(reader, refs)
    ceilings = rules.each(fields.get("ceilings"), "guardrails.ceilings", "ceiling", rules.ceiling)
    blocked = rules.each(fields.get("blocked"), "guardrails.blocked", "blocked path", rules.blocked)
    throttles = rules.each(
        fields.get("throttles"), "guardrails.throttles", "throttle", rules.throttle
    )
    if len(reader.errors) != before:
        return None
    return Guardrails(ceilings=ceilings, blocked=blocked, throttles=throttles)


class _GuardrailRules:
    def __init__(self, reader: FieldReader, refs: PolicyReferences) -> None:
        self.reader = reader
        self.refs = refs

    def each(
        self,
        section: Node | None,
        path: str,
        kind: str,
        parse: Callable[[Node, str], Rule | None],
    ) -> tuple[Rule, ...]:
        """Every rule of one list; names are unique within the list (not across lists:
        a ceiling and a throttle for the same thing may well share a name)."""
        names = Names(kind)
        rules: list[Rule] = []
        for i, item in enumerate(self.reader.sequence(section, path) or ()):
            item_path = join_path(path, i)
            name_node = item.value.get("name") if isinstance(item.value, Mapping) else None
            unique = True
            if name_node is not None and isinstance(name_node.value, str) and name_node.value:
                unique = names.declare(self.reader, name_node, join_path(item_path, "name"))
            rule = parse(item, item_path)
            if rule is not None and unique:
                rules.append(rule)
        return tuple(rules)

    def _fields(self, node: Node, path: str, own: tuple[str, ...]) -> Mapping[str, Node] | None:
        return self.reader.mapping(node, path, ("name",), (*MATCH_KEYS, *own))

    def _name(self, fields: Mapping[str, Node], path: str) -> str | None:
        return self.reader.string(fields.get("name"), join_path(path, "name"))

    def match(self, fields: Mapping[str, Node], path: str) -> Match:
        reader, refs = self.reader, self.refs

        def text(key: str) -> str:
            return reader.string(fields.get(key), join_path(path, key)) or ""

        def unknown(key: str, message: str) -> None:
            reader.error(fields[key].line, join_path(path, key), message)

        capability, tenant, team = text("capability"), text("tenant"), text("team")
        priority = ""
        if "priority" in fields:
            priority = (
                reader.choice(fields["priority"], join_path(path, "priority"), PRIORITY_ORDER) or ""
            )
        if capability and capability not in refs.capabilities:
            unknown("capability", f"unknown capability {capability!r}")
        if tenant and tenant not in refs.tenant_teams:
            unknown("tenant", f"unknown tenant {tenant!r}")
        elif tenant and team and team not in refs.tenant_teams[tenant]:
            unknown("team", f"tenant {tenant!r} has no team {team!r}")
        elif team and not tenant and not any(team in t for t in refs.tenant_teams.values()):
            # Without a tenant the rule matches that team name in every tenant.
            unknown("team", f"no tenant has a team {team!r}")
        return Match(capability=capability, tenant=tenant, team=team, priority=priority)

    def ceiling(self, node: Node, path: str) -> Ceiling | None:
        own = ("max_cost_per_request", "max_input_tokens", "max_output_tokens")
        fields = self._fields(node, path, own)
        if fields is None:
            return None
        reader = self.reader
        before = len(reader.errors)
        name = self._name(fields, path)
        match = self.match(fields, path)
        cost_path = join_path(path, "max_cost_per_request")
        cost = reader.usd(fields.get("max_cost_per_request"), cost_path)
        if cost == 0:
            reader.error(
                fields["max_cost_per_request"].line,
                cost_path,
                "must be positive (leave it out for no cost ceiling)",
            )
        max_input = reader.positive_int(
            fields.get("max_input_tokens"), join_path(path, "max_input_tokens")
        )
        max_output = reader.positive_int(
            fields.get("max_output_tokens"), join_path(path, "max_output_tokens")
        )
        if not any(key in fields for key in own):
            reader.error(node.line, path, f"a ceiling needs at least one of {', '.join(own)}")
        if len(reader.errors) != before or name is None:
            return None
        return Ceiling(
            name=name,
            match=match,
            max_cost_nanos=cost or 0,
            max_input_tokens=max_input or 0,
            max_output_tokens=max_output or 0,
        )

    def blocked(self, node: Node, path: str) -> BlockedPath | None:
        fields = self._fields(node, path, BLOCK_TARGETS)
        if fields is None:
            return None
        reader, refs = self.reader, self.refs
        before = len(reader.errors)
        name = self._name(fields, path)
        match = self.match(fields, path)
        targets = {
            key: reader.string(fields.get(key), join_path(path, key)) or "" for key in BLOCK_TARGETS
        }
        given = [key for key in BLOCK_TARGETS if key in fields]
        if len(given) != 1:
            what = "none" if not given else ", ".join(given)
            reader.error(
                node.line, path, f"needs exactly one of model, tier, provider (has {what})"
            )
        known = {"model": refs.models, "tier": refs.tiers, "provider": refs.providers}
        for key, value in targets.items():
            if value and value not in known[key]:
                reader.error(fields[key].line, join_path(path, key), f"unknown {key} {value!r}")
        if len(reader.errors) != before or name is None:
            return None
        return BlockedPath(name=name, match=match, **targets)

    def throttle(self, node: Node, path: str) -> Throttle | None:
        own = ("requests_per_second", "burst", "tokens_per_minute", "reserve")
        fields = self._fields(node, path, own)
        if fields is None:
            return None
        reader = self.reader
        before = len(reader.errors)
        name = self._name(fields, path)
        match = self.match(fields, path)
        rps_path = join_path(path, "requests_per_second")
        rps = reader.number(fields.get("requests_per_second"), rps_path)
        if rps is not None and rps <= 0:
            reader.error(fields["requests_per_second"].line, rps_path, "must be positive")
        burst_path = join_path(path, "burst")
        burst = reader.number(fields.get("burst"), burst_path)
        if burst is not None and "requests_per_second" not in fields:
            reader.error(fields["burst"].line, burst_path, "needs requests_per_second")
        elif burst is not None and burst < 1:
            # A bucket that cannot hold one whole request would refuse everything.
            reader.error(fields["burst"].line, burst_path, "must be at least 1")
        tokens = reader.positive_int(
            fields.get("tokens_per_minute"), join_path(path, "tokens_per_minute")
        )
        if "requests_per_second" not in fields and "tokens_per_minute" not in fields:
            reader.error(
                node.line, path, "a throttle needs requests_per_second or tokens_per_minute"
            )
        reserves = self.reserves(fields.get("reserve"), join_path(path, "reserve"))
        if len(reader.errors) != before or name is None:
            return None
        # Rates are token-bucket refill speeds, not money: float is their snapshot type.
        return Throttle(
            name=name,
            match=match,
            requests_per_second=float(rps or 0),
            burst=float(burst or 0),
            tokens_per_minute=tokens or 0,
            reserves=reserves,
        )

    def reserves(self, node: Node | None, path: str) -> Mapping[str, float]:
        """Shares in [0, 1) per priority; a class left out keeps its default share."""
        fields = self.reader.free_mapping(node, path)
        if fields is None or node is None:
            return DEFAULT_RESERVES
        shares = dict(DEFAULT_RESERVES)
        given: set[str] = set()
        for key, value_node in fields.items():
            key_path = join_path(path, key)
            line = node.key_lines.get(key, node.line)
            if key not in PRIORITY_ORDER:
                self.reader.error(
                    line, key_path, f"unknown priority; expected one of {', '.join(PRIORITY_ORDER)}"
                )
                continue
            share = self.reader.number(value_node, key_path)
            if share is None:
                continue
            if not 0 <= share < 1:
                self.reader.error(value_node.line, key_path, "must be at least 0 and below 1")
                continue
            shares[key] = float(share)
            given.add(key)
        for higher, lower in itertools.pairwise(PRIORITY_ORDER):
            if shares[lower] < shares[higher]:

                def shown(key: str) -> str:
                    return f"{shares[key]:g}" + ("" if key in given else ", the default")

                self.reader.error(
                    node.line,
                    path,
                    f"{lower} ({shown(lower)}) must keep at least the share of "
                    f"{higher} ({shown(higher)}): lower classes are throttled first",
                )
        return MappingProxyType(shares)
