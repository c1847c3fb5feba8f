"""Configuration validation: every problem reported, located by line and path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from controlplane.compiler import compile_snapshot
from controlplane.config import ConfigInvalid, load_config, validate_config
from controlplane.config_source import read_tree
from faregate.policy import (
    Governance,
    governance_from_json,
    governance_to_json,
    guardrails_to_json,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "faregate.yaml"

MINIMAL = """\
models:
  - name: small
    provider: acme
    tier: small
    locality: external
    context_window: 1000
    max_output_tokens: 100
    price: {input: 0.10, output: 0.40}
capabilities:
  - name: chat
    default_max_output_tokens: 50
    candidates: [small]
"""


def problems(text: str) -> list[str]:
    config, errors = validate_config(text)
    assert config is None or not errors
    return [error.render("f.yaml") for error in errors]


def test_the_example_configuration_applies_cleanly() -> None:
    config = load_config(EXAMPLE.read_text(), "faregate.yaml")
    assert [m.name for m in config.models][:2] == ["claude-sonnet-4", "gpt-4o"]
    assert len(config.capabilities) == 5
    gemini = next(m for m in config.models if m.name == "gemini-2.5-pro")
    # "above 200000 input tokens" starts at the 200001st.
    assert gemini.price.tiers[0].min_input_tokens == 200_001
    assert gemini.price.tiers[0].cached_input_nanos_per_mtok == 625_000_000
    assert config.tenants[0].teams[1].cost_center == "CC-3400"


def test_minimal_configuration_and_defaults() -> None:
    config = load_config(MINIMAL)
    (model,) = config.models
    assert model.price.cached_input_nanos_per_mtok == model.price.input_nanos_per_mtok
    assert model.unavailable is False
    assert config.capabilities[0].routing.strategy == "cheapest"


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("input: 0.10", "input: -0.10", "f.yaml:8: models[0].price.input: must not be negative"),
        (
            "input: 0.10",
            "input: 0.0000000001",
            "f.yaml:8: models[0].price.input: 0.0000000001 has more than 9 decimal places",
        ),
        ("input: 0.10", "input: '0.10'", "f.yaml:8: models[0].price.input: must be a number"),
        ("locality: external", "locality: moon", "f.yaml:5: models[0].locality: 'moon' is not"),
        ("context_window: 1000", "context_window: 0", "f.yaml:6: models[0].context_window: must"),
        (
            "max_output_tokens: 100",
            "max_output_tokens: 1.5",
            "f.yaml:7: models[0].max_output_tokens: must be a whole number, not 1.5",
        ),
        ("    tier: small\n", "    tier: small\n    colour: red\n", "f.yaml:5: models[0].colour"),
        ("    tier: small\n", "", "f.yaml:2: models[0].tier: required"),
        ("candidates: [small]", "candidates: [small, big]", "capabilities[0].candidates[1]: unk"),
        ("candidates: [small]", "candidates: []", "f.yaml:12: capabilities[0].candidates: must"),
        ("candidates: [small]", "candidates: small", "capabilities[0].candidates: must be a list"),
        (
            "candidates: [small]",
            "candidates: [small]\n    routing: {strategy: fastest}",
            "f.yaml:13: capabilities[0].routing.strategy: 'fastest' is not one of",
        ),
        (
            "candidates: [small]",
            "candidates: [small]\n    routing: {downgrade_chain: [nope]}",
            "capabilities[0].routing.downgrade_chain[0]: unknown model 'nope'",
        ),
        (
            "price: {input: 0.10, output: 0.40}",
            "price: {input: 0.10, output: 0.40}\n    quality: {chat: 1.5, poetry: 0.5}",
            "f.yaml:9: models[0].quality.chat: must be between 0 and 1",
        ),
        (
            "price: {input: 0.10, output: 0.40}",
            "price: {input: 0.10, output: 0.40}\n    quality: {poetry: 0.5}",
            "f.yaml:9: models[0].quality.poetry: unknown capability",
        ),
        ("models:", "extra: 1\nmodels:", "f.yaml:1: extra: unknown key"),
        ("    provider: acme\n", "    provider: acme\n    provider: acme\n", "duplicate key"),
        ("  - name: chat", "  - name: [chat", "invalid YAML"),
    ],
)
def test_one_problem_is_reported_with_its_line_and_path(
    source: str, target: str, expected: str
) -> None:
    assert source in MINIMAL
    found = problems(MINIMAL.replace(source, target, 1))
    assert any(expected in line for line in found), found


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = (
        MINIMAL.replace("input: 0.10", "input: -1")
        .replace("locality: external", "locality: orbit")
        .replace("candidates: [small]", "candidates: [small, ghost]")
        + "tenants:\n  - name: acme\n  - name: acme\n"
    )
    found = problems(text)
    assert found == [
        "f.yaml:5: models[0].locality: 'orbit' is not one of local, regional, external",
        "f.yaml:8: models[0].price.input: must not be negative",
        "f.yaml:12: capabilities[0].candidates[1]: unknown model 'ghost'",
        "f.yaml:15: tenants[1].name: duplicate tenant name 'acme' (first on line 14)",
    ]
    with pytest.raises(ConfigInvalid) as raised:
        load_config(text, "f.yaml")
    assert raised.value.lines == tuple(found)


def test_duplicate_models_and_unordered_tiers() -> None:
    text = MINIMAL.replace(
        "capabilities:",
        """\
  - name: small
    provider: acme
    tier: big
    locality: local
    context_window: 1000
    max_output_tokens: 100
    price:
      input: 1
      output: 2
      tiers:
        - {above_input_tokens: 500, input: 2, output: 3}
        - {above_input_tokens: 500, input: 3, output: 4}
capabilities:""",
    )
    found = problems(text)
    assert "f.yaml:9: models[1].name: duplicate model name 'small' (first on line 2)" in found
    assert any(
        line.startswith("f.yaml:20: models[1].price.tiers[1].above_input_tokens") for line in found
    )


def test_empty_and_non_mapping_documents() -> None:
    assert problems("") == ["f.yaml:1: the configuration is empty"]
    assert problems("- a\n- b\n") == ["f.yaml:1: must be a mapping, not a list"]
    assert problems("{}") == ["f.yaml:1: models: required", "f.yaml:1: capabilities: required"]


def test_complexity_tiers_name_tiers_the_catalog_and_candidates_have() -> None:
    text = MINIMAL.replace(
        "candidates: [small]",
        "candidates: [small]\n    routing:\n      strategy: complexity-tiers\n"
        "      complexity_tiers: {low: small, extreme: small, high: huge}",
    )
    found = problems(text)
    assert any("complexity_tiers.extreme: unknown complexity" in line for line in found)
    assert any(
        "complexity_tiers.high: unknown tier 'huge' (the catalog has: small)" in line
        for line in found
    )


LARGE_MODEL = """\
  - name: big
    provider: acme
    tier: large
    locality: external
    context_window: 1000
    max_output_tokens: 100
    price: {input: 1, output: 2}
"""


@pytest.mark.parametrize(
    ("tiers", "stored", "expected"),
    [
        ("{low: small}", {"low": "small"}, None),
        ("{low: [small], high: [large, small]}", {"low": "small", "high": "large,small"}, None),
        # A tier no candidate offers is fine inside a list another tier makes useful.
        ("{high: [large, small]}", {"high": "large,small"}, None),
        ("{high: large}", None, "complexity_tiers.high: no candidate model has tier 'large'"),
        ("{high: [large]}", None, "complexity_tiers.high: no candidate model has tier 'large'"),
        ("{high: []}", None, "complexity_tiers.high: must name at least one tier"),
        ("{high: [small, small]}", None, "complexity_tiers.high: tiers must be distinct"),
        ("{high: [small, 3]}", None, "complexity_tiers.high[1]: must be a string, not 3"),
        ("{high: [tiny]}", None, "complexity_tiers.high: unknown tier 'tiny'"),
    ],
)
def test_complexity_tiers_take_one_tier_or_a_list(
    tiers: str, stored: dict[str, str] | None, expected: str | None
) -> None:
    text = MINIMAL.replace("capabilities:\n", LARGE_MODEL + "capabilities:\n").replace(
        "candidates: [small]",
        "candidates: [small]\n    routing:\n      strategy: complexity-tiers\n"
        f"      complexity_tiers: {tiers}",
    )
    config, errors = validate_config(text)
    if expected is None:
        assert not errors, errors
        assert config is not None
        assert dict(config.capabilities[0].routing.complexity_tiers) == stored
    else:
        assert any(expected in e.render("f.yaml") for e in errors), errors


def test_numbers_are_decimals_from_their_source_text() -> None:
    tree, errors = read_tree("a: 0.1\nb: 3\nc: 1_000.000000001\nd: .inf\n")
    assert tree is not None
    values = tree.plain()
    assert values["a"] == Decimal("0.1") and isinstance(values["a"], Decimal)
    assert values["b"] == 3
    assert values["c"] == Decimal("1000.000000001")
    assert [e.line for e in errors] == [4]


@pytest.mark.parametrize(
    ("usd", "nanos"),
    [
        ("0.1", 100_000_000),
        ("0.29", 290_000_000),  # 0.29 * 1e9 as a float is 290000000.00000006
        ("2.675", 2_675_000_000),
        ("0.000000001", 1),
        ("1234567.123456789", 1_234_567_123_456_789),
    ],
)
def test_prices_are_exact(usd: str, nanos: int) -> None:
    config = load_config(MINIMAL.replace("input: 0.10", f"input: {usd}"))
    assert config.models[0].price.input_nanos_per_mtok == nanos


def test_policy_sections_are_typed_and_compiled_to_their_json_form() -> None:
    config = load_config(
        MINIMAL
        + "guardrails:\n  ceilings: [{name: c, max_cost_per_request: 0.05}]\ngovernance: {}\n"
    )
    assert config.guardrails.ceilings[0].max_cost_nanos == 50_000_000
    assert config.governance == Governance()
    snapshot = compile_snapshot(config, 1, 0)
    assert snapshot.guardrails == guardrails_to_json(config.guardrails)
    assert snapshot.governance == governance_to_json(Governance())
    assert governance_from_json(snapshot.governance) == Governance()


def test_budgets_are_read_and_checked() -> None:
    text = (
        MINIMAL
        + "tenants:\n  - name: acme\n    teams: [{name: risk}]\n"
        + "budgets:\n"
        + "  - {name: b1, limit: 100.5, tenant: acme, team: risk, soft_thresholds: [0.5, 0.8]}\n"
        + "  - {name: b2, limit: 1, tenant: acme, team: ops, model: ghost}\n"
    )
    found = problems(text)
    assert found == [
        "f.yaml:18: budgets[1].team: tenant 'acme' has no team 'ops'",
        "f.yaml:18: budgets[1].model: unknown model 'ghost'",
    ]
    config = load_config(text.replace("team: ops, model: ghost", "model: small"))
    assert config.budgets[0].limit_nanos == 100_500_000_000
    assert config.budgets[0].soft_thresholds == (0.5, 0.8)
