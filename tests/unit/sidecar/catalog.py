"""A small model catalog and helpers shared by the sidecar's unit tests.

Prices are nano-USD per million tokens. Worst cases for 1,000 tokens in and 500
out: tiny 300_000, small 450_000, local 550_000, tagged 600_000, big 10_500_000;
`offline` would be the cheapest of all but is marked unavailable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from faregate.model import (
    Action,
    Budget,
    Capability,
    Locality,
    Model,
    Outcome,
    Price,
    PriceTier,
    RoutingPolicy,
    Snapshot,
    UsageRecord,
    content_version,
)
from faregate.policy import Governance, Guardrails, governance_to_json, guardrails_to_json
from sidecar.context import Runtime
from sidecar.decision import Decision, RouteRequest
from sidecar.engine import decide
from sidecar.pressure import NO_PRESSURE, BudgetPressure

T0 = 1_800_000_000_000


class FakeClock:
    """Wall and monotonic time that move only when a test says so (`advance`)."""

    def __init__(self, now_ms: int = 1_800_000_000_000, mono_ms: int = 1_000_000) -> None:
        self.now = now_ms
        self.mono = mono_ms

    def now_ms(self) -> int:
        return self.now

    def monotonic_ms(self) -> int:
        return self.mono

    def advance(self, ms: int) -> None:
        self.now += ms
        self.mono += ms


def model(
    name: str,
    *,
    locality: Locality = Locality.EXTERNAL,
    tags: tuple[str, ...] = (),
    window: int = 128_000,
    max_output: int = 16_384,
    price: tuple[int, int, int] = (150_000_000, 75_000_000, 600_000_000),
    tiers: tuple[PriceTier, ...] = (),
    unavailable: bool = False,
    provider: str = "",
    tier: str = "small",
) -> Model:
    return Model(
        name=name,
        provider=provider or f"{name}-inc",
        tier=tier,
        locality=locality,
        context_window=window,
        max_output_tokens=max_output,
        price=Price(*price, tiers=tiers, version=f"{name}@1"),
        compliance_tags=tags,
        unavailable=unavailable,
    )


BIG = model(
    "big",
    tags=("soc2",),
    window=200_000,
    max_output=8_000,
    price=(3_000_000_000, 300_000_000, 15_000_000_000),
    tier="large",
)
SMALL = model("small", tags=("soc2",))
TINY = model("tiny", window=16_000, max_output=2_048, price=(100_000_000, 25_000_000, 400_000_000))
LOCAL = model(
    "local",
    locality=Locality.LOCAL,
    tags=("confidential", "regulated"),
    window=32_768,
    max_output=4_096,
    price=(350_000_000, 350_000_000, 400_000_000),
    tier="local",
)
TAGGED = model(
    "tagged",
    locality=Locality.REGIONAL,
    tags=("confidential",),
    price=(200_000_000, 200_000_000, 800_000_000),
)
OFFLINE = model("offline", price=(10_000_000, 10_000_000, 10_000_000), unavailable=True)
LONG = model(
    "long",
    window=1_048_576,
    max_output=65_536,
    price=(1_250_000_000, 310_000_000, 10_000_000_000),
    tiers=(PriceTier(200_000, 2_500_000_000, 625_000_000, 15_000_000_000),),
    tier="large",
)

CHAT = Capability(
    name="chat",
    description="general chat",
    default_max_output_tokens=500,
    candidates=("big", "small", "tiny", "local", "tagged", "offline"),
)
ESSAY = Capability(
    name="essay",
    description="long answers",
    default_max_output_tokens=3_000,
    candidates=("tiny", "long"),
    routing=RoutingPolicy(downgrade_chain=("tiny",)),
)


def make_snapshot(
    models: tuple[Model, ...] = (BIG, SMALL, TINY, LOCAL, TAGGED, OFFLINE, LONG),
    capabilities: tuple[Capability, ...] = (CHAT, ESSAY),
    revision: int = 1,
    *,
    guardrails: Guardrails | Mapping[str, Any] | None = None,
    governance: Governance | Mapping[str, Any] | None = None,
    budgets: tuple[Budget, ...] = (),
) -> Snapshot:
    """A snapshot whose version is its content hash, as the control plane makes them.

    Policy sections may be typed (written as the control plane writes them) or raw JSON."""
    if isinstance(guardrails, Guardrails):
        guardrails = guardrails_to_json(guardrails)
    if isinstance(governance, Governance):
        governance = governance_to_json(governance)
    draft = Snapshot(
        version="",
        revision=revision,
        created_at_unix_ms=1_800_000_000_000,
        models=models,
        capabilities=capabilities,
        budgets=budgets,
        guardrails=guardrails or {},
        governance=governance or {},
    )
    return dataclasses.replace(draft, version=content_version(draft))


def record(n: int) -> UsageRecord:
    """A settled usage record whose id, tokens and cost are all `n`."""
    return UsageRecord(
        decision_id=f"d-{n}",
        service="svc",
        capability="chat",
        tenant="acme",
        team="",
        model="tiny",
        provider="tiny-inc",
        action=Action.ALLOW,
        input_tokens=n,
        cached_input_tokens=0,
        output_tokens=0,
        cost_nanos=n,
        estimated_cost_nanos=n,
        reserved_cost_nanos=0,
        price_version="tiny@1",
        config_version="v1",
        outcome=Outcome.SUCCESS,
        latency_ms=1,
        decided_at_unix_ms=0,
        reported_at_unix_ms=0,
    )


class Engine:
    """The pure engine with state kept between calls, on a fake clock."""

    def __init__(self, snapshot: Snapshot, pressure: BudgetPressure = NO_PRESSURE) -> None:
        self.snapshot = snapshot
        self.runtime = Runtime.fresh(pressure)
        self.now = T0
        self._ids = 0

    def route(self, request: RouteRequest) -> Decision:
        self._ids += 1
        return decide(
            self.snapshot, request, f"d-{self._ids}", now_ms=self.now, runtime=self.runtime
        )


def rule_names(decision: Decision) -> tuple[str, ...]:
    return tuple(rule for rule, _ in decision.rules)
