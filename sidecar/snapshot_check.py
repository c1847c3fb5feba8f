"""Consistency checks a snapshot must pass before the sidecar serves from it.

The control plane validates before publishing; the sidecar checks again because a
bad snapshot here means wrong decisions for every request, and because the file in
the state dir may be corrupt or from another build. Every problem is reported, not
just the first. Pure: must not import gRPC or the wire types.
"""

from __future__ import annotations

from collections import Counter

from faregate.model import Model, Snapshot, content_version

STRATEGIES = frozenset({"cheapest", "cheapest-qualified", "complexity-tiers", "ordered"})


def _duplicates(names: list[str]) -> list[str]:
    return sorted(name for name, count in Counter(names).items() if count > 1)


def _check_model(model: Model) -> list[str]:
    where = f"model {model.name!r}"
    problems: list[str] = []
    if model.context_window <= 0:
        problems.append(f"{where}: context_window must be > 0")
    if model.max_output_tokens <= 0:
        problems.append(f"{where}: max_output_tokens must be > 0")
    price = model.price
    rates = [
        price.input_nanos_per_mtok,
        price.cached_input_nanos_per_mtok,
        price.output_nanos_per_mtok,
    ]
    previous = 0
    for tier in price.tiers:
        rates += [
            tier.input_nanos_per_mtok,
            tier.cached_input_nanos_per_mtok,
            tier.output_nanos_per_mtok,
        ]
        if tier.min_input_tokens <= previous:
            problems.append(f"{where}: price tiers must start above 0 and ascend")
        previous = tier.min_input_tokens
    if any(rate < 0 for rate in rates):
        problems.append(f"{where}: prices must not be negative")
    return problems


def check_snapshot(snapshot: Snapshot) -> tuple[str, ...]:
    """Every reason not to serve from `snapshot`; empty when it is consistent."""
    problems: list[str] = []
    if not snapshot.version:
        problems.append("version is empty")
    else:
        expected = content_version(snapshot)
        if snapshot.version != expected:
            problems.append(
                f"version {snapshot.version} does not match its content (hash {expected})"
            )
    model_names = [m.name for m in snapshot.models]
    if any(not name for name in model_names):
        problems.append("a model has no name")
    problems += [f"model {name!r} is defined twice" for name in _duplicates(model_names)]
    for model in snapshot.models:
        problems += _check_model(model)
    capability_names = [c.name for c in snapshot.capabilities]
    if any(not name for name in capability_names):
        problems.append("a capability has no name")
    problems += [f"capability {n!r} is defined twice" for n in _duplicates(capability_names)]
    known = snapshot.models_by_name
    for capability in snapshot.capabilities:
        where = f"capability {capability.name!r}"
        if capability.default_max_output_tokens <= 0:
            problems.append(f"{where}: default_max_output_tokens must be > 0")
        if not capability.candidates:
            problems.append(f"{where}: has no candidate models")
        problems += [
            f"{where}: candidate {name!r} is not a known model"
            for name in capability.candidates
            if name not in known
        ]
        routing = capability.routing
        if routing.strategy not in STRATEGIES:
            problems.append(f"{where}: unknown routing strategy {routing.strategy!r}")
        problems += [
            f"{where}: downgrade model {name!r} is not one of its candidates"
            for name in routing.downgrade_chain
            if name not in capability.candidates
        ]
    return tuple(problems)
