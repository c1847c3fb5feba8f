"""The `guardrails` and `governance` sections: typed values, or every problem located."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from controlplane.config import load_config, validate_config
from faregate.policy import (
    DEFAULT_RESERVES,
    BlockedPath,
    Ceiling,
    Governance,
    Guardrails,
    Match,
    Throttle,
)

# Lines 1-25; a policy section appended below starts on line 26.
CATALOG = """\
models:
  - name: big
    provider: p1
    tier: large
    locality: external
    context_window: 1000
    max_output_tokens: 100
    price: {input: 3, output: 15}
  - name: mini
    provider: p2
    tier: small
    locality: external
    context_window: 1000
    max_output_tokens: 100
    price: {input: 0.15, output: 0.60}
capabilities:
  - name: chat
    default_max_output_tokens: 50
    candidates: [big, mini]
tenants:
  - name: acme
    teams: [{name: risk}, {name: ops}]
  - name: globex
    teams: [{name: sales}]
budgets: []
"""


CEILING = "guardrails:\n  ceilings:\n    - "
BLOCKED = "guardrails:\n  blocked:\n    - "
THROTTLE = "guardrails:\n  throttles:\n    - "


def problems(section: str) -> list[str]:
    config, errors = validate_config(CATALOG + section)
    assert config is None or not errors
    return [error.render("f.yaml") for error in errors]


def guardrails_of(section: str) -> Guardrails:
    return load_config(CATALOG + section).guardrails


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "{name: c, capability: chat, tenant: acme, team: risk, priority: batch,"
            " max_cost_per_request: 0.05, max_input_tokens: 1000, max_output_tokens: 200}",
            Ceiling(
                "c",
                Match("chat", "acme", "risk", "batch"),
                max_cost_nanos=50_000_000,
                max_input_tokens=1000,
                max_output_tokens=200,
            ),
        ),
        ("{name: c, max_output_tokens: 10}", Ceiling("c", max_output_tokens=10)),
        # Without a tenant, a team matches that team name in every tenant.
        ("{name: c, team: sales, max_input_tokens: 5}", Ceiling("c", Match(team="sales"), 0, 5)),
        ("{name: c, max_cost_per_request: 0.000000001}", Ceiling("c", max_cost_nanos=1)),
    ],
)
def test_ceilings_are_read(rule: str, expected: Ceiling) -> None:
    assert guardrails_of(CEILING + rule + "\n").ceilings == (expected,)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "{name: b, priority: batch, tier: large}",
            BlockedPath("b", Match(priority="batch"), tier="large"),
        ),
        (
            "{name: b, tenant: acme, model: big}",
            BlockedPath("b", Match(tenant="acme"), model="big"),
        ),
        ("{name: b, provider: p2}", BlockedPath("b", provider="p2")),
    ],
)
def test_blocked_paths_are_read(rule: str, expected: BlockedPath) -> None:
    assert guardrails_of(BLOCKED + rule + "\n").blocked == (expected,)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "{name: t, tenant: acme, capability: chat, requests_per_second: 50, burst: 100,"
            " tokens_per_minute: 3000000, reserve: {batch: 0.2, background: 0.4}}",
            Throttle(
                "t",
                Match(capability="chat", tenant="acme"),
                requests_per_second=50.0,
                burst=100.0,
                tokens_per_minute=3_000_000,
                reserves=DEFAULT_RESERVES,
            ),
        ),
        ("{name: t, requests_per_second: 0.5}", Throttle("t", requests_per_second=0.5)),
        (
            "{name: t, tokens_per_minute: 10, reserve: {batch: 0.5, background: 0.5}}",
            Throttle(
                "t",
                tokens_per_minute=10,
                reserves=MappingProxyType({"interactive": 0.0, "batch": 0.5, "background": 0.5}),
            ),
        ),
    ],
)
def test_throttles_are_read(rule: str, expected: Throttle) -> None:
    (throttle,) = guardrails_of(THROTTLE + rule + "\n").throttles
    assert throttle == expected


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("guardrails: [a]\n", "f.yaml:26: guardrails: must be a mapping, not a list"),
        ("guardrails:\n  limits: []\n", "f.yaml:27: guardrails.limits: unknown key"),
        ("guardrails:\n  ceilings: {}\n", "f.yaml:27: guardrails.ceilings: must be a list"),
        (
            CEILING + "{max_input_tokens: 5}\n",
            "f.yaml:28: guardrails.ceilings[0].name: required",
        ),
        (
            CEILING + "{name: c}\n",
            "f.yaml:28: guardrails.ceilings[0]: a ceiling needs at least one of",
        ),
        (
            CEILING + "{name: c, max_cost_per_request: -1}\n",
            "f.yaml:28: guardrails.ceilings[0].max_cost_per_request: must not be negative",
        ),
        (
            CEILING + "{name: c, max_cost_per_request: 0}\n",
            "guardrails.ceilings[0].max_cost_per_request: must be positive (leave it out",
        ),
        (
            CEILING + "{name: c, max_input_tokens: 1.5}\n",
            "guardrails.ceilings[0].max_input_tokens: must be a whole number, not 1.5",
        ),
        (
            CEILING + "{name: c, max_input_tokens: 1, colour: red}\n",
            "f.yaml:28: guardrails.ceilings[0].colour: unknown key",
        ),
        (
            CEILING + "{name: c, capability: poetry, max_input_tokens: 1}\n",
            "guardrails.ceilings[0].capability: unknown capability 'poetry'",
        ),
        (
            CEILING + "{name: c, tenant: initech, max_input_tokens: 1}\n",
            "guardrails.ceilings[0].tenant: unknown tenant 'initech'",
        ),
        (
            CEILING + "{name: c, tenant: acme, team: sales, max_input_tokens: 1}\n",
            "guardrails.ceilings[0].team: tenant 'acme' has no team 'sales'",
        ),
        (
            CEILING + "{name: c, team: hr, max_input_tokens: 1}\n",
            "guardrails.ceilings[0].team: no tenant has a team 'hr'",
        ),
        (
            CEILING + "{name: c, priority: urgent, max_input_tokens: 1}\n",
            "guardrails.ceilings[0].priority: 'urgent' is not one of interactive, batch,",
        ),
        (
            CEILING + "{name: c, max_input_tokens: 1}\n    - {name: c, max_input_tokens: 2}\n",
            "f.yaml:29: guardrails.ceilings[1].name: duplicate ceiling name 'c' (first on line 28)",
        ),
        (
            BLOCKED + "{name: b, tier: large, model: big}\n",
            "f.yaml:28: guardrails.blocked[0]: needs exactly one of model, tier, provider"
            " (has model, tier)",
        ),
        (
            BLOCKED + "{name: b, priority: batch}\n",
            "guardrails.blocked[0]: needs exactly one of model, tier, provider (has none)",
        ),
        (
            BLOCKED + "{name: b, model: huge}\n",
            "guardrails.blocked[0].model: unknown model 'huge'",
        ),
        (
            BLOCKED + "{name: b, tier: medium}\n",
            "guardrails.blocked[0].tier: unknown tier 'medium'",
        ),
        (
            BLOCKED + "{name: b, provider: p9}\n",
            "guardrails.blocked[0].provider: unknown provider 'p9'",
        ),
        (
            THROTTLE + "{name: t}\n",
            "guardrails.throttles[0]: a throttle needs requests_per_second or tokens_per_minute",
        ),
        (
            THROTTLE + "{name: t, requests_per_second: 0}\n",
            "guardrails.throttles[0].requests_per_second: must be positive",
        ),
        (
            THROTTLE + "{name: t, tokens_per_minute: 9, burst: 5}\n",
            "guardrails.throttles[0].burst: needs requests_per_second",
        ),
        (
            THROTTLE + "{name: t, requests_per_second: 5, burst: 0.5}\n",
            "guardrails.throttles[0].burst: must be at least 1",
        ),
        (
            THROTTLE + "{name: t, tokens_per_minute: 0}\n",
            "guardrails.throttles[0].tokens_per_minute: must be positive",
        ),
        (
            THROTTLE + "{name: t, tokens_per_minute: 9, reserve: {batch: 1}}\n",
            "guardrails.throttles[0].reserve.batch: must be at least 0 and below 1",
        ),
        (
            THROTTLE + "{name: t, tokens_per_minute: 9, reserve: {vip: 0.1}}\n",
            "guardrails.throttles[0].reserve.vip: unknown priority",
        ),
        (
            THROTTLE + "{name: t, tokens_per_minute: 9, reserve: {batch: 0.5}}\n",
            "guardrails.throttles[0].reserve: background (0.4, the default) must keep at least"
            " the share of batch (0.5)",
        ),
        (
            "guardrails:\n  throttles:\n"
            "    - {name: t, tokens_per_minute: 9, reserve: {interactive: 0.3, batch: 0.1}}\n",
            "guardrails.throttles[0].reserve: batch (0.1) must keep at least the share of"
            " interactive (0.3)",
        ),
    ],
)
def test_guardrail_problems_are_located(section: str, expected: str) -> None:
    found = problems(section)
    assert any(expected in line for line in found), found


def test_rule_names_are_unique_per_list_not_across_lists() -> None:
    guardrails = guardrails_of(
        "guardrails:\n"
        "  ceilings: [{name: chat, max_input_tokens: 5}]\n"
        "  throttles: [{name: chat, requests_per_second: 5}]\n"
    )
    assert guardrails.ceilings[0].name == guardrails.throttles[0].name == "chat"


def test_every_guardrail_problem_is_reported_at_once() -> None:
    found = problems(
        "guardrails:\n"
        "  ceilings: [{name: c, capability: poetry}]\n"
        "  blocked: [{name: b}]\n"
        "  throttles: [{name: t, burst: 0}]\n"
    )
    assert len(found) >= 5, found
    assert [line.split(":")[1] for line in found] == sorted(
        (line.split(":")[1] for line in found), key=int
    )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("governance: {}\n", Governance()),
        ("governance:\n", Governance()),
        ("", Governance()),
        (
            "governance:\n  cost_bands: {low: 0.02, medium: 0.5}\n",
            Governance(band_limits_nanos=(20_000_000, 500_000_000)),
        ),
        # Only one bound given: the other keeps its default.
        (
            "governance:\n  cost_bands: {medium: 0.10}\n",
            Governance(band_limits_nanos=(10_000_000, 100_000_000)),
        ),
        (
            "governance:\n  approval_ttl: 30m\n  default_grant: 2d\n  default_max_uses: 3\n",
            Governance(approval_ttl_ms=1_800_000, default_grant_ms=172_800_000, default_max_uses=3),
        ),
        ("governance:\n  approval_ttl: 1h30m\n", Governance(approval_ttl_ms=5_400_000)),
    ],
)
def test_governance_is_read_with_defaults(section: str, expected: Governance) -> None:
    assert load_config(CATALOG + section).governance == expected


def test_the_matrix_keeps_defaults_cell_by_cell() -> None:
    governance = load_config(
        CATALOG + "governance:\n  matrix:\n    low: {high: approval}\n    critical: {low: deny}\n"
    ).governance
    assert governance.action("low", "high") == "approval"
    assert governance.action("low", "medium") == "allow"
    assert governance.action("critical", "low") == "deny"
    assert governance.action("critical", "high") == "deny"
    assert governance.action("high", "high") == "approval"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("governance: [a]\n", "f.yaml:26: governance: must be a mapping, not a list"),
        ("governance:\n  bands: {}\n", "f.yaml:27: governance.bands: unknown key"),
        (
            "governance:\n  cost_bands: {low: 0.5, medium: 0.1}\n",
            "f.yaml:27: governance.cost_bands: low ($0.5000) must be below medium ($0.1000)",
        ),
        (
            "governance:\n  cost_bands: {low: 0.5}\n",
            "governance.cost_bands: low ($0.5000) must be below medium ($0.2500, the default)",
        ),
        (
            "governance:\n  cost_bands: {low: -1}\n",
            "governance.cost_bands.low: must not be negative",
        ),
        (
            "governance:\n  cost_bands: {high: 1}\n",
            "governance.cost_bands.high: unknown key; expected one of low, medium",
        ),
        (
            "governance:\n  matrix:\n    extreme: {low: allow}\n",
            "f.yaml:28: governance.matrix.extreme: unknown risk level",
        ),
        (
            "governance:\n  matrix:\n    high: {huge: deny}\n",
            "governance.matrix.high.huge: unknown key; expected one of high, low, medium",
        ),
        (
            "governance:\n  matrix:\n    high: {high: maybe}\n",
            "f.yaml:28: governance.matrix.high.high: 'maybe' is not one of allow, approval, deny",
        ),
        (
            "governance:\n  approval_ttl: 3600\n",
            "f.yaml:27: governance.approval_ttl: 3600 is not a duration such as 30m, 1h, 2d",
        ),
        (
            "governance:\n  default_grant: soon\n",
            "governance.default_grant: 'soon' is not a duration",
        ),
        (
            "governance:\n  default_grant: 0m\n",
            "governance.default_grant: must be longer than zero",
        ),
        (
            "governance:\n  default_max_uses: 0\n",
            "f.yaml:27: governance.default_max_uses: must be positive",
        ),
    ],
)
def test_governance_problems_are_located(section: str, expected: str) -> None:
    found = problems(section)
    assert any(expected in line for line in found), found
