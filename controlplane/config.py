"""The configuration schema: YAML text → a validated `Config`, or every problem in it.

Implements the schema in docs/architecture.md ("Configuration"). The whole document
is checked and all problems are collected (unknown and missing keys, wrong types,
negative or sub-nano prices, unknown model and capability references, duplicate
names, unordered price tiers, bad enumerations) so an operator fixes a file in one
pass; one problem rejects the whole file. Money is read from the source text as a
`Decimal` and converted to integer nano-USD with `faregate.pricing.usd_to_nanos`.

Pure: may import yaml (through `config_source`) and the shared pure model; must not
import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from controlplane.config_budgets import BudgetReferences, read_budget
from controlplane.config_fields import INT64_MAX, FieldReader, Names
from controlplane.config_governance import read_governance
from controlplane.config_guardrails import PolicyReferences, read_guardrails
from controlplane.config_source import ConfigError, ConfigInvalid, Node, join_path, read_tree
from faregate.model import (
    Budget,
    Capability,
    Locality,
    Model,
    Price,
    PriceTier,
    RoutingPolicy,
    Team,
    Tenant,
)
from faregate.policy import Governance, Guardrails

__all__ = ["Config", "ConfigError", "ConfigInvalid", "load_config", "validate_config"]

STRATEGIES = ("cheapest", "cheapest-qualified", "complexity-tiers", "ordered")
COMPLEXITIES = ("low", "medium", "high", "reasoning")

T = TypeVar("T")

_TOP_REQUIRED = ("models", "capabilities")
_TOP_OPTIONAL = ("tenants", "budgets", "guardrails", "governance")


@dataclass(frozen=True, slots=True)
class Config:
    """A configuration that passed every check, as shared-model values.

    Prices carry no `version` yet: the compiler derives it.
    """

    models: tuple[Model, ...]
    capabilities: tuple[Capability, ...]
    tenants: tuple[Tenant, ...] = ()
    budgets: tuple[Budget, ...] = ()
    guardrails: Guardrails = field(default_factory=Guardrails)
    governance: Governance = field(default_factory=Governance)


def load_config(text: str, source_name: str = "faregate.yaml") -> Config:
    """Parse and validate; raises `ConfigInvalid` listing every problem."""
    config, errors = validate_config(text)
    if errors or config is None:
        raise ConfigInvalid(source_name, errors)
    return config


def validate_config(text: str) -> tuple[Config | None, tuple[ConfigError, ...]]:
    """Parse and validate; returns the config (None if any problem) and the problems."""
    tree, read_errors = read_tree(text)
    reader = FieldReader()
    reader.errors.extend(read_errors)
    if tree is None:
        if not read_errors:
            reader.error(1, "", "the configuration is empty")
        return None, reader.sorted_errors()
    config = _Schema(reader).document(tree)
    errors = reader.sorted_errors()
    return (None if errors else config), errors


class _Schema:
    def __init__(self, reader: FieldReader) -> None:
        self.reader = reader
        self.model_names = Names("model")
        self.capability_names = Names("capability")
        self.tenant_names = Names("tenant")
        self.budget_names = Names("budget")
        self.model_tiers: dict[str, str] = {}
        self.model_providers: dict[str, str] = {}
        self.tenant_teams: dict[str, frozenset[str]] = {}

    def document(self, tree: Node) -> Config | None:
        top = self.reader.mapping(tree, "", _TOP_REQUIRED, _TOP_OPTIONAL)
        if top is None:
            return None
        # Names first, so references are checked against everything the file declares
        # (a capability may be declared after the model whose quality names it).
        self._collect_names(top.get("models"), "models", self.model_names)
        self._collect_names(top.get("capabilities"), "capabilities", self.capability_names)
        models = self._each(top.get("models"), "models", self.model)
        capabilities = self._each(top.get("capabilities"), "capabilities", self.capability)
        tenants = self._each(top.get("tenants"), "tenants", self.tenant)
        budgets = self._each(top.get("budgets"), "budgets", self.budget)
        references = PolicyReferences(
            capabilities=self.capability_names.known(),
            tenant_teams=self.tenant_teams,
            models=self.model_names.known(),
            tiers=frozenset(self.model_tiers.values()),
            providers=frozenset(self.model_providers.values()),
        )
        guardrails = read_guardrails(self.reader, top.get("guardrails"), references)
        governance = read_governance(self.reader, top.get("governance"))
        if guardrails is None or governance is None:
            return None
        return Config(
            models=models,
            capabilities=capabilities,
            tenants=tenants,
            budgets=budgets,
            guardrails=guardrails,
            governance=governance,
        )

    def _collect_names(self, section: Node | None, path: str, names: Names) -> None:
        if section is None or not isinstance(section.value, tuple):
            return
        for i, item in enumerate(section.value):
            if isinstance(item.value, Mapping) and "name" in item.value:
                name_node = item.value["name"]
                if isinstance(name_node.value, str) and name_node.value.strip():
                    names.declare(self.reader, name_node, join_path(join_path(path, i), "name"))

    def _each(
        self, section: Node | None, path: str, parse: Callable[[Node, str], T | None]
    ) -> tuple[T, ...]:
        items = self.reader.sequence(section, path) if section is not None else ()
        parsed = (parse(item, join_path(path, i)) for i, item in enumerate(items or ()))
        return tuple(value for value in parsed if value is not None)

    # -- models -------------------------------------------------------------------

    def model(self, node: Node, path: str) -> Model | None:
        fields = self.reader.mapping(
            node,
            path,
            (
                "name",
                "provider",
                "tier",
                "locality",
                "context_window",
                "max_output_tokens",
                "price",
            ),
            ("compliance", "quality", "unavailable"),
        )
        if fields is None:
            return None
        reader = self.reader
        name = reader.string(fields.get("name"), join_path(path, "name"))
        provider = reader.string(fields.get("provider"), join_path(path, "provider"))
        tier = reader.string(fields.get("tier"), join_path(path, "tier"))
        locality = reader.choice(fields.get("locality"), join_path(path, "locality"), Locality)
        context_window = reader.positive_int(
            fields.get("context_window"), join_path(path, "context_window")
        )
        max_output = reader.positive_int(
            fields.get("max_output_tokens"), join_path(path, "max_output_tokens")
        )
        price = self.price(fields.get("price"), join_path(path, "price"))
        compliance = reader.string_list(fields.get("compliance"), join_path(path, "compliance"))
        quality = self.quality(fields.get("quality"), join_path(path, "quality"))
        unavailable = reader.boolean(fields.get("unavailable"), join_path(path, "unavailable"))
        if name is not None and tier is not None:
            self.model_tiers.setdefault(name, tier)
        if name is not None and provider is not None:
            self.model_providers.setdefault(name, provider)
        if (
            name is None
            or provider is None
            or tier is None
            or locality is None
            or context_window is None
            or max_output is None
            or price is None
        ):
            return None
        return Model(
            name=name,
            provider=provider,
            tier=tier,
            locality=Locality(locality),
            context_window=context_window,
            max_output_tokens=max_output,
            price=price,
            compliance_tags=tuple(compliance or ()),
            unavailable=bool(unavailable),
            quality=MappingProxyType(quality or {}),
        )

    def price(self, node: Node | None, path: str) -> Price | None:
        fields = self.reader.mapping(node, path, ("input", "output"), ("cached_input", "tiers"))
        if fields is None:
            return None
        rates = self._rates(fields, path)
        tiers: list[PriceTier] = []
        previous = 0
        tier_nodes = self.reader.sequence(fields.get("tiers"), join_path(path, "tiers")) or ()
        for i, tier_node in enumerate(tier_nodes):
            tier_path = join_path(join_path(path, "tiers"), i)
            tier_fields = self.reader.mapping(
                tier_node, tier_path, ("above_input_tokens", "input", "output"), ("cached_input",)
            )
            if tier_fields is None:
                continue
            above_path = join_path(tier_path, "above_input_tokens")
            above = self.reader.positive_int(tier_fields.get("above_input_tokens"), above_path)
            if above is not None and above <= previous:
                self.reader.error(
                    tier_fields["above_input_tokens"].line,
                    above_path,
                    f"must be greater than the previous tier's ({previous}); "
                    "tiers are strictly ascending",
                )
            elif above is not None:
                previous = above
            tier_rates = self._rates(tier_fields, tier_path)
            if above is not None and tier_rates is not None and above < INT64_MAX:
                # "above N input tokens" starts at N + 1; `PriceTier.min_input_tokens`
                # is the first token count the tier applies to.
                tiers.append(PriceTier(above + 1, *tier_rates))
        if rates is None or len(tiers) != len(tier_nodes):
            return None
        return Price(*rates, tiers=tuple(tiers))

    def _rates(self, fields: Mapping[str, Node], path: str) -> tuple[int, int, int] | None:
        """(input, cached input, output) nanos per Mtok; cached defaults to input."""
        reader = self.reader
        input_nanos = reader.usd_per_mtok(fields.get("input"), join_path(path, "input"))
        output_nanos = reader.usd_per_mtok(fields.get("output"), join_path(path, "output"))
        cached_nanos = input_nanos
        if "cached_input" in fields:
            cached_nanos = reader.usd_per_mtok(
                fields["cached_input"], join_path(path, "cached_input")
            )
        if input_nanos is None or output_nanos is None or cached_nanos is None:
            return None
        return input_nanos, cached_nanos, output_nanos

    def quality(self, node: Node | None, path: str) -> dict[str, float] | None:
        fields = self.reader.free_mapping(node, path)
        if fields is None:
            return None
        scores: dict[str, float] = {}
        for capability, value_node in fields.items():
            key_path = join_path(path, capability)
            if capability not in self.capability_names:
                self.reader.error(node_line(node, capability), key_path, "unknown capability")
            score = self.reader.fraction(value_node, key_path)
            if score is not None:
                # A quality score is a ranking weight, not money: float is its wire type.
                scores[capability] = float(score)
        return scores

    # -- capabilities ---------------------------------------------------------------

    def capability(self, node: Node, path: str) -> Capability | None:
        fields = self.reader.mapping(
            node,
            path,
            ("name", "default_max_output_tokens", "candidates"),
            ("description", "routing"),
        )
        if fields is None:
            return None
        reader = self.reader
        name = reader.string(fields.get("name"), join_path(path, "name"))
        description = reader.string(
            fields.get("description"), join_path(path, "description"), empty=True
        )
        default_max = reader.positive_int(
            fields.get("default_max_output_tokens"), join_path(path, "default_max_output_tokens")
        )
        candidates = self.model_list(fields.get("candidates"), join_path(path, "candidates"))
        if candidates == ():
            reader.error(
                fields["candidates"].line, join_path(path, "candidates"), "must not be empty"
            )
        routing = RoutingPolicy()
        if "routing" in fields:
            parsed = self.routing(fields["routing"], join_path(path, "routing"), candidates or ())
            routing = parsed if parsed is not None else routing
        if name is None or default_max is None or not candidates:
            return None
        return Capability(
            name=name,
            description=description or "",
            default_max_output_tokens=default_max,
            candidates=candidates,
            routing=routing,
        )

    def model_list(self, node: Node | None, path: str) -> tuple[str, ...] | None:
        """A list of distinct, declared model names."""
        names = self.reader.string_list(node, path)
        if names is None or node is None or not isinstance(node.value, tuple):
            return None
        seen: set[str] = set()
        for i, (name, item) in enumerate(zip(names, node.value, strict=True)):
            if name not in self.model_names:
                self.reader.error(item.line, join_path(path, i), f"unknown model {name!r}")
            elif name in seen:
                self.reader.error(item.line, join_path(path, i), f"{name!r} is listed twice")
            seen.add(name)
        return tuple(names)

    def routing(self, node: Node, path: str, candidates: tuple[str, ...]) -> RoutingPolicy | None:
        fields = self.reader.mapping(
            node, path, (), ("strategy", "quality_floor", "downgrade_chain", "complexity_tiers")
        )
        if fields is None:
            return None
        reader = self.reader
        strategy = "cheapest"
        if "strategy" in fields:
            strategy = (
                reader.choice(fields["strategy"], join_path(path, "strategy"), STRATEGIES) or ""
            )
        floor = reader.fraction(fields.get("quality_floor"), join_path(path, "quality_floor"))
        chain_path = join_path(path, "downgrade_chain")
        chain = self.model_list(fields.get("downgrade_chain"), chain_path) or ()
        chain_node = fields.get("downgrade_chain")
        chain_items = chain_node.value if chain_node and isinstance(chain_node.value, tuple) else ()
        for i, (model, item) in enumerate(zip(chain, chain_items, strict=False)):
            if model in self.model_names and candidates and model not in candidates:
                reader.error(item.line, join_path(chain_path, i), f"{model!r} is not a candidate")
        tiers = self.complexity_tiers(fields.get("complexity_tiers"), path, candidates)
        if strategy == "complexity-tiers" and not tiers and "complexity_tiers" not in fields:
            reader.error(node.line, join_path(path, "complexity_tiers"), "required by strategy")
        return RoutingPolicy(
            strategy=strategy,
            quality_floor=float(floor) if floor is not None else 0.0,
            downgrade_chain=chain,
            complexity_tiers=MappingProxyType(tiers),
        )

    def complexity_tiers(
        self, node: Node | None, routing_path: str, candidates: tuple[str, ...]
    ) -> dict[str, str]:
        """complexity → its tiers, comma-separated (the snapshot's form of a list).

        Every tier must exist in the catalog; at least one of a complexity's tiers must
        be offered by a candidate, or the entry could never pick anything.
        """
        path = join_path(routing_path, "complexity_tiers")
        fields = self.reader.free_mapping(node, path)
        if fields is None:
            return {}
        catalog = set(self.model_tiers.values())
        offered = {self.model_tiers[m] for m in candidates if m in self.model_tiers}
        result: dict[str, str] = {}
        for complexity, value_node in fields.items():
            key_path = join_path(path, complexity)
            if complexity not in COMPLEXITIES:
                self.reader.error(
                    node_line(node, complexity),
                    key_path,
                    f"unknown complexity; expected one of {', '.join(COMPLEXITIES)}",
                )
            tiers = self._tier_list(value_node, key_path)
            if tiers is None:
                continue
            unknown = [tier for tier in tiers if tier not in catalog]
            for tier in unknown:
                known = ", ".join(sorted(catalog)) or "none"
                self.reader.error(
                    value_node.line, key_path, f"unknown tier {tier!r} (the catalog has: {known})"
                )
            if not unknown and candidates and not offered.intersection(tiers):
                names = " or ".join(repr(tier) for tier in tiers)
                self.reader.error(value_node.line, key_path, f"no candidate model has tier {names}")
            result[complexity] = ",".join(tiers)
        return result

    def _tier_list(self, node: Node, path: str) -> list[str] | None:
        """One tier (`large`) or a non-empty list of distinct tiers (`[local, small]`)."""
        if not isinstance(node.value, tuple):
            tier = self.reader.string(node, path)
            return None if tier is None else [tier]
        tiers = self.reader.string_list(node, path)
        if tiers is None:
            return None
        if not tiers:
            self.reader.error(node.line, path, "must name at least one tier")
            return None
        if len(set(tiers)) != len(tiers) or any("," in tier for tier in tiers):
            self.reader.error(node.line, path, "tiers must be distinct names without commas")
            return None
        return tiers

    # -- tenants and budgets ----------------------------------------------------------

    def tenant(self, node: Node, path: str) -> Tenant | None:
        fields = self.reader.mapping(node, path, ("name",), ("teams",))
        if fields is None:
            return None
        name = self.reader.string(fields.get("name"), join_path(path, "name"))
        if name is not None:
            self.tenant_names.declare(self.reader, fields["name"], join_path(path, "name"))
        team_names = Names("team")
        teams: list[Team] = []
        team_nodes = self.reader.sequence(fields.get("teams"), join_path(path, "teams")) or ()
        for i, team_node in enumerate(team_nodes):
            team_path = join_path(join_path(path, "teams"), i)
            team_fields = self.reader.mapping(team_node, team_path, ("name",), ("cost_center",))
            if team_fields is None:
                continue
            team = self.reader.string(team_fields.get("name"), join_path(team_path, "name"))
            cost_center = self.reader.string(
                team_fields.get("cost_center"), join_path(team_path, "cost_center"), empty=True
            )
            if team is not None:
                team_names.declare(self.reader, team_fields["name"], join_path(team_path, "name"))
                teams.append(Team(team, cost_center or ""))
        if name is None:
            return None
        self.tenant_teams.setdefault(name, frozenset(t.name for t in teams))
        return Tenant(name=name, teams=tuple(teams))

    def budget(self, node: Node, path: str) -> Budget | None:
        references = BudgetReferences(
            models=self.model_names.known(),
            capabilities=self.capability_names.known(),
            tiers=frozenset(self.model_tiers.values()),
            tenant_teams=self.tenant_teams,
        )
        duplicate = False
        name_node = node.value.get("name") if isinstance(node.value, Mapping) else None
        if name_node is not None and isinstance(name_node.value, str) and name_node.value.strip():
            declared = self.budget_names.declare(self.reader, name_node, join_path(path, "name"))
            duplicate = not declared
        budget = read_budget(self.reader, node, path, references)
        return None if duplicate else budget


def node_line(mapping_node: Node | None, key: str) -> int:
    """The line of `key` in a mapping node (falls back to the mapping's own line)."""
    if mapping_node is None:
        return 1
    return mapping_node.key_lines.get(key, mapping_node.line)
