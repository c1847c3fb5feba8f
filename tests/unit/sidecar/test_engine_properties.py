"""Properties of the engine over random catalogs, policies and requests (hypothesis).

Whatever the configuration: an allowed route never uses a model the data
sensitivity forbids, a blocked path, an unavailable model or one whose context
window is too small; never costs more than an applicable cost ceiling; is priced
as `faregate.pricing` prices it; and the same requests against the same state get
the same decisions.
"""

from __future__ import annotations

from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from faregate.model import (
    Capability,
    Complexity,
    Locality,
    Model,
    Price,
    Priority,
    RiskLevel,
    RoutingPolicy,
    Sensitivity,
    Snapshot,
)
from faregate.policy import (
    BlockedPath,
    Ceiling,
    Governance,
    Guardrails,
    Match,
    Throttle,
    guardrails_from_json,
)
from faregate.pricing import worst_case_cost_nanos
from sidecar.decision import Decision, RouteRequest
from tests.unit.sidecar.catalog import Engine, make_snapshot

TIERS = ("large", "small", "local")
PROVIDERS = ("p1", "p2", "p3")
TAGS = ("confidential", "regulated", "soc2")
TENANTS = ("acme", "globex")
PROPERTIES = settings(max_examples=200, deadline=None)


@st.composite
def models(draw: st.DrawFn) -> tuple[Model, ...]:
    count = draw(st.integers(2, 7))
    out = []
    for i in range(count):
        rate = draw(st.integers(0, 20_000)) * 1_000_000
        out.append(
            Model(
                name=f"m{i}",
                provider=draw(st.sampled_from(PROVIDERS)),
                tier=draw(st.sampled_from(TIERS)),
                locality=draw(st.sampled_from(list(Locality))),
                context_window=draw(st.sampled_from((4_000, 32_000, 200_000))),
                max_output_tokens=draw(st.sampled_from((256, 2_000, 8_000))),
                price=Price(rate, rate // 2, rate * draw(st.integers(1, 5))),
                compliance_tags=tuple(draw(st.lists(st.sampled_from(TAGS), unique=True))),
                unavailable=draw(st.integers(0, 3)) == 0,
                quality=MappingProxyType({"cap": draw(st.floats(0, 1))}),
            )
        )
    return tuple(out)


def matches() -> st.SearchStrategy[Match]:
    return st.builds(
        Match,
        tenant=st.sampled_from(("", *TENANTS)),
        priority=st.sampled_from(("", "batch", "interactive")),
    )


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    catalog = draw(models())
    names = [m.name for m in catalog]
    routing = RoutingPolicy(
        strategy=draw(
            st.sampled_from(("cheapest", "cheapest-qualified", "complexity-tiers", "ordered"))
        ),
        quality_floor=draw(st.floats(0, 1)),
        downgrade_chain=tuple(draw(st.lists(st.sampled_from(names), unique=True))),
        complexity_tiers=MappingProxyType(
            {
                level: ",".join(draw(st.lists(st.sampled_from(TIERS), unique=True, min_size=1)))
                for level in draw(
                    st.lists(st.sampled_from(("low", "medium", "high", "reasoning")), unique=True)
                )
            }
        ),
    )
    capability = Capability(
        "cap", "", draw(st.sampled_from((100, 1_000, 4_000))), tuple(names), routing
    )
    ceilings = draw(
        st.lists(
            st.builds(
                Ceiling,
                name=st.sampled_from(("c1", "c2", "c3")),
                match=matches(),
                max_cost_nanos=st.integers(0, 50_000_000),
                max_input_tokens=st.sampled_from((0, 0, 5_000, 50_000)),
                max_output_tokens=st.sampled_from((0, 0, 500, 3_000)),
            ),
            max_size=2,
        )
    )
    blocked = draw(
        st.lists(
            st.builds(
                BlockedPath,
                name=st.sampled_from(("b1", "b2")),
                match=matches(),
                model=st.sampled_from(("", *names)),
                tier=st.sampled_from(("", *TIERS)),
                provider=st.sampled_from(("", *PROVIDERS)),
            ),
            max_size=2,
        )
    )
    throttles = draw(
        st.lists(
            st.builds(
                Throttle,
                name=st.just("t"),
                match=matches(),
                requests_per_second=st.sampled_from((0.0, 1.0, 10.0)),
                tokens_per_minute=st.sampled_from((0, 100_000)),
            ),
            max_size=1,
        )
    )
    low = draw(st.integers(0, 5_000_000))
    governance = Governance(band_limits_nanos=(low, low + draw(st.integers(0, 50_000_000))))
    return make_snapshot(
        models=catalog,
        capabilities=(capability,),
        guardrails=Guardrails(tuple(ceilings), tuple(blocked), tuple(throttles)),
        governance=governance,
    )


requests = st.builds(
    RouteRequest,
    capability=st.just("cap"),
    tenant=st.sampled_from(TENANTS),
    sensitivity=st.sampled_from(list(Sensitivity)),
    risk=st.sampled_from(list(RiskLevel)),
    priority=st.sampled_from(list(Priority)),
    complexity=st.sampled_from(list(Complexity)),
    complexity_score=st.none() | st.floats(0, 1),
    input_tokens=st.integers(0, 60_000),
    max_output_tokens=st.sampled_from((0, 100, 1_000, 10_000)),
    required_compliance_tags=st.lists(st.sampled_from(TAGS), max_size=1, unique=True).map(tuple),
    dry_run=st.booleans(),
)


def _applies(match: Match, request: RouteRequest) -> bool:
    return match.matches(request.capability, request.tenant, request.team, request.priority.value)


def check_allowed(snapshot: Snapshot, request: RouteRequest, decision: Decision) -> None:
    model = snapshot.models_by_name[decision.model]
    rules = guardrails_from_json(snapshot.guardrails)
    assert not model.unavailable
    if request.sensitivity in (Sensitivity.CONFIDENTIAL, Sensitivity.REGULATED):
        certified = request.sensitivity.value in model.compliance_tags
        assert model.locality is Locality.LOCAL or certified
    assert set(request.required_compliance_tags) <= set(model.compliance_tags)
    assert request.input_tokens + decision.max_output_tokens <= model.context_window
    for path in rules.blocked:
        if _applies(path.match, request):
            assert not (
                (not path.model or path.model == model.name)
                and (not path.tier or path.tier == model.tier)
                and (not path.provider or path.provider == model.provider)
            ), path
    for ceiling in rules.ceilings:
        if _applies(ceiling.match, request):
            if ceiling.max_cost_nanos:
                assert decision.estimated_cost_nanos <= ceiling.max_cost_nanos, ceiling
            if ceiling.max_output_tokens:
                assert decision.max_output_tokens <= ceiling.max_output_tokens
            if ceiling.max_input_tokens:
                assert request.input_tokens <= ceiling.max_input_tokens
    assert decision.estimated_cost_nanos == worst_case_cost_nanos(
        model, request.input_tokens, decision.max_output_tokens
    )


@PROPERTIES
@given(snapshots(), st.lists(requests, min_size=1, max_size=6))
def test_allowed_routes_respect_every_rule(snapshot: Snapshot, batch: list[RouteRequest]) -> None:
    engine = Engine(snapshot)
    for request in batch:
        decision = engine.route(request)
        assert decision.rules or decision.allows_call
        assert decision.reason
        assert decision.config_version == snapshot.version
        if decision.allows_call:
            check_allowed(snapshot, request, decision)
        else:
            assert decision.model == ""
        engine.now += 100


@PROPERTIES
@given(snapshots(), st.lists(requests, min_size=1, max_size=6))
def test_same_requests_and_state_give_the_same_decisions(
    snapshot: Snapshot, batch: list[RouteRequest]
) -> None:
    first, second = Engine(snapshot), Engine(snapshot)
    for request in batch:
        assert first.route(request) == second.route(request)
        first.now += 50
        second.now += 50
