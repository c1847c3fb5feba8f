"""Benchmark: the in-process cost of one routing decision, without any RPC.

Builds a synthetic snapshot (50 models across the large, small and local tiers
with varied prices, localities, compliance tags and context windows; 20
capabilities of 5-10 candidates each) and a fixed mix of requests (every
sensitivity, prompts from 50 to 180k tokens, some requiring compliance tags), then
times, call by call with `time.perf_counter_ns`:

- `sidecar.engine.decide(...)`: the pure pipeline with its default steps, so steps
  added later (guardrails, budgets, governance) are measured without changing this
  file;
- `sidecar.decider.Decider.route(...)`: what the Router service calls, which adds a
  fresh decision id, the idempotency LRU and remembering the decision for Report
  (the real `DecisionRegistry`); half the requests carry a new idempotency key;
- `Decider.route` answering a retry from the idempotency LRU.

The first two run interleaved in chunks so that noise hits both alike. Touches no
sockets, files or databases.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from faregate.model import (
    Budget,
    Capability,
    Locality,
    Model,
    Price,
    PriceTier,
    Sensitivity,
    Snapshot,
    Team,
    Tenant,
    content_version,
)
from faregate.periods import period_key
from faregate.policy import (
    BlockedPath,
    Ceiling,
    Governance,
    Guardrails,
    Match,
    Throttle,
    governance_to_json,
    guardrails_to_json,
)
from sidecar.clock import SystemClock
from sidecar.context import Runtime
from sidecar.decider import Decider
from sidecar.engine import Decision, RouteRequest, decide
from sidecar.leases import Grant, LeaseBook
from sidecar.usage import DecisionRegistry
from tests.bench.report import Section, add_latency
from tests.bench.stats import Latency

TARGET_MEDIAN_US = 25.0
SEED = 20250601
TIERS = (("large", 15), ("small", 20), ("local", 15))
COMPLIANCE_TAGS = ("soc2", "hipaa", "gdpr", "confidential", "regulated")
SENSITIVITY_WEIGHTS = {
    Sensitivity.PUBLIC: 2,
    Sensitivity.INTERNAL: 5,
    Sensitivity.CONFIDENTIAL: 2,
    Sensitivity.REGULATED: 1,
}
INPUT_SIZES = {50: 3, 400: 4, 2_000: 4, 12_000: 2, 60_000: 1, 180_000: 1}
MILLI_USD_PER_MTOK = 1_000_000  # nanos per Mtok of a price step of $0.001 per Mtok


@dataclass(frozen=True, slots=True)
class Options:
    iterations: int = 20_000
    warmup: int = 2_000
    chunk: int = 1_000  # calls per turn when two subjects alternate
    replays: int = 5_000


def _price(rng: random.Random, tier: str) -> Price:
    low, high = {"large": (1_000, 15_000), "small": (50, 1_000), "local": (20, 300)}[tier]
    input_nanos = rng.randrange(low, high) * MILLI_USD_PER_MTOK
    output_nanos = input_nanos * rng.choice((3, 4, 5, 8))
    cached_nanos = input_nanos // rng.choice((2, 4, 10))
    tiers: tuple[PriceTier, ...] = ()
    if tier == "large" and rng.random() < 0.3:
        # Long prompts cost more, as with some providers' list prices.
        tiers = (PriceTier(200_000, input_nanos * 2, cached_nanos * 2, output_nanos * 3 // 2),)
    return Price(input_nanos, cached_nanos, output_nanos, tiers, version="bench-1")


def _model(rng: random.Random, tier: str, index: int) -> Model:
    if tier == "local":
        locality = Locality.LOCAL
        window = rng.choice((8_192, 32_768, 131_072))
    else:
        locality = rng.choice((Locality.EXTERNAL, Locality.EXTERNAL, Locality.REGIONAL))
        window = rng.choice(
            (128_000, 200_000, 1_048_576) if tier == "large" else (32_768, 128_000, 200_000)
        )
    tags = tuple(sorted(rng.sample(COMPLIANCE_TAGS, rng.randint(0, 3))))
    return Model(
        name=f"{tier}-model-{index:02d}",
        provider=rng.choice(("anthropic", "openai", "google", "mistral", "in-house")),
        tier=tier,
        locality=locality,
        context_window=window,
        max_output_tokens=min(window // 2, rng.choice((4_096, 8_192, 16_384, 65_536))),
        price=_price(rng, tier),
        compliance_tags=tags,
        unavailable=rng.random() < 0.04,
    )


def synthetic_snapshot(seed: int = SEED) -> Snapshot:
    """50 models and 20 capabilities; every capability has at least one local candidate."""
    rng = random.Random(seed)
    models = [_model(rng, tier, i) for tier, count in TIERS for i in range(count)]
    local = [m.name for m in models if m.tier == "local"]
    capabilities = []
    for index in range(20):
        names = rng.sample([m.name for m in models], rng.randint(5, 10))
        if not set(names) & set(local):
            names[-1] = rng.choice(local)
        capabilities.append(
            Capability(
                name=f"capability-{index:02d}",
                description="synthetic",
                default_max_output_tokens=rng.choice((256, 512, 1_024, 4_096)),
                candidates=tuple(names),
            )
        )
    tenants = (Tenant("acme", (Team("support"), Team("legal"), Team("risk"))),)
    draft = Snapshot("", 1, 0, tuple(models), tuple(capabilities), tenants)
    return dataclasses.replace(draft, version=content_version(draft))


def with_policy(snapshot: Snapshot) -> Snapshot:
    """The same catalog under every kind of rule the engine evaluates on the hot path:
    cost and token ceilings, blocked paths, throttles (generous enough to pass), the
    default governance matrix, and a strict budget per team enforced through leases."""
    ceilings = tuple(
        Ceiling(f"ceiling-{i}", Match(capability=c.name), max_cost_nanos=50_000_000)
        for i, c in enumerate(snapshot.capabilities[:10])
    )
    blocked = (
        BlockedPath("no-large-for-batch", Match(priority="batch"), tier="large"),
        BlockedPath("legal-off-external", Match(team="legal"), provider="provider-0"),
    )
    throttles = tuple(
        Throttle(f"throttle-{i}", Match(capability=c.name), requests_per_second=1e9, burst=1e9)
        for i, c in enumerate(snapshot.capabilities[:10])
    )
    budgets = tuple(
        Budget(f"{team}-monthly", 10**15, tenant="acme", team=team, soft_thresholds=(0.8,))
        for team in ("support", "legal", "risk")
    )
    draft = dataclasses.replace(
        snapshot,
        budgets=budgets,
        guardrails=guardrails_to_json(Guardrails(ceilings, blocked, throttles)),
        governance=governance_to_json(Governance()),
    )
    return dataclasses.replace(draft, version=content_version(draft))


def _granted_leases(snapshot: Snapshot, clock: SystemClock) -> LeaseBook:
    book = LeaseBook("bench")
    book.configure(snapshot.budgets)
    for budget in snapshot.budgets:
        key = period_key(budget.period, budget.time_zone, clock.now_ms())
        grant = Grant(budget.name, f"lease-{budget.name}", 10**15, 3_600_000, period_key=key)
        book.apply_grant(grant, clock.monotonic_ms(), clock.now_ms())
    return book


def request_mix(snapshot: Snapshot, count: int = 512, seed: int = SEED) -> list[RouteRequest]:
    rng = random.Random(seed + 1)
    sensitivities = list(SENSITIVITY_WEIGHTS)
    sizes = list(INPUT_SIZES)
    mix = []
    for _ in range(count):
        mix.append(
            RouteRequest(
                capability=rng.choice(snapshot.capabilities).name,
                tenant="acme",
                team=rng.choice(("support", "legal", "risk")),
                sensitivity=rng.choices(sensitivities, list(SENSITIVITY_WEIGHTS.values()))[0],
                input_tokens=rng.choices(sizes, list(INPUT_SIZES.values()))[0],
                max_output_tokens=rng.choice((0, 0, 256, 2_048)),
                required_compliance_tags=("soc2",) if rng.random() < 0.1 else (),
                labels={"feature": rng.choice(("chat", "search", "batch"))},
            )
        )
    return mix


class _FixedSnapshot:
    """A `SnapshotSource` that always serves the same snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.current: Snapshot | None = snapshot


def _time_calls(call: Callable[[int], object], start: int, count: int, out: list[int]) -> None:
    clock = time.perf_counter_ns
    for i in range(start, start + count):
        began = clock()
        call(i)
        out.append(clock() - began)


def _timer_overhead(samples: int = 20_000) -> Latency:
    out: list[int] = []
    _time_calls(lambda _: None, 0, samples, out)
    return Latency.of_nanos(out)


def _actions(decisions: Sequence[Decision]) -> str:
    counts = Counter(d.action.value for d in decisions)
    return ", ".join(f"{action} {n * 100 / len(decisions):.0f}%" for action, n in counts.items())


def run(options: Options = Options()) -> Section:
    section = Section("decision", "Routing decision, in process")
    snapshot = synthetic_snapshot()
    mix = request_mix(snapshot)
    ids = [f"bench-{i:06d}" for i in range(len(mix))]
    total = options.warmup + options.iterations
    # Decider requests are built up front: half carry a fresh idempotency key, so the
    # LRU both inserts and (past its capacity) evicts, as under real traffic.
    keyed = [mix[i % len(mix)] for i in range(total)]
    for i in range(1, total, 2):
        keyed[i] = dataclasses.replace(keyed[i], idempotency_key=f"key-{i}")
    decider = Decider(_FixedSnapshot(snapshot), DecisionRegistry(SystemClock()))
    clock = SystemClock()
    policed = with_policy(snapshot)
    policed_decider = Decider(
        _FixedSnapshot(policed),
        DecisionRegistry(clock),
        clock=clock,
        runtime=Runtime.fresh(leases=_granted_leases(policed, clock)),
    )

    def engine_call(i: int) -> Decision:
        return decide(snapshot, mix[i % len(mix)], ids[i % len(ids)])

    def decider_call(i: int) -> Decision:
        return decider.route(keyed[i])

    def policed_call(i: int) -> Decision:
        return policed_decider.route(keyed[i])

    warm: list[int] = []
    _time_calls(engine_call, 0, options.warmup, warm)
    _time_calls(decider_call, 0, options.warmup, warm)
    _time_calls(policed_call, 0, options.warmup, warm)
    engine_ns: list[int] = []
    decider_ns: list[int] = []
    policed_ns: list[int] = []
    for start in range(options.warmup, total, options.chunk):
        count = min(options.chunk, total - start)
        _time_calls(engine_call, start, count, engine_ns)
        _time_calls(decider_call, start, count, decider_ns)
        _time_calls(policed_call, start, count, policed_ns)

    retry = dataclasses.replace(mix[0], idempotency_key="retry-me")
    decider.route(retry)
    replay_ns: list[int] = []
    _time_calls(lambda _: decider.route(retry), 0, options.replays, replay_ns)

    engine = Latency.of_nanos(engine_ns)
    via_decider = Latency.of_nanos(decider_ns)
    replay = Latency.of_nanos(replay_ns)
    overhead = _timer_overhead()
    engine_median = add_latency(section, "engine_decide", "engine.decide", engine)
    decider_median = add_latency(section, "decider_route", "Decider.route", via_decider)
    policed = Latency.of_nanos(policed_ns)
    policed_median = add_latency(
        section, "decider_route_policy", "Decider.route, every rule kind + leases", policed
    )
    add_latency(section, "decider_replay", "Decider.route, idempotent retry", replay)
    section.add(
        "decider_over_engine",
        "Decider / engine median",
        via_decider.median_us / engine.median_us,
        "x",
    )
    section.add("timer_overhead.median_us", "timer overhead median", overhead.median_us, "µs")
    section.add(
        "policy_over_plain",
        "with policy / without, median",
        policed.median_us / via_decider.median_us,
        "x",
    )
    for label, median in (
        ("engine.decide", engine_median),
        ("Decider.route", decider_median),
        ("Decider.route with policy", policed_median),
    ):
        section.target(
            f"{label} median < {TARGET_MEDIAN_US:g} µs", median, median.value < TARGET_MEDIAN_US
        )
    decisions = [engine_call(i) for i in range(len(mix))]
    section.note(
        f"{len(snapshot.models)} models, {len(snapshot.capabilities)} capabilities, "
        f"{len(mix)} distinct requests ({_actions(decisions)}); "
        f"{engine.samples:,} timed calls per subject after {options.warmup:,} warm-up"
    )
    return section
