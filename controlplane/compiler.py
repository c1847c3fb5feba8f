"""The snapshot compiler: a validated `Config` → an immutable, versioned `Snapshot`.

The snapshot's `version` is `faregate.model.content_version`, a hash of its content
(revision number and creation time excluded), so the same configuration always
compiles to the same version and any change gives a new one. Each model's price gets
a `version` too, `MODEL@HASH` of the price alone, which every cost row records so a
charge can be traced to the exact price it was computed with. Guardrails and
governance are written in their JSON form (`faregate.policy`), money in nanos.

Pure: must not import grpc, sqlalchemy or `faregate.v1`; reads no clock (the
creation time is passed in).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from controlplane.config import Config
from faregate.model import Model, Price, Snapshot, content_version
from faregate.policy import governance_to_json, guardrails_to_json


def price_version(model_name: str, price: Price) -> str:
    """`MODEL@HASH`: changes exactly when the model's rates or tiers change."""
    rates = {
        "input": price.input_nanos_per_mtok,
        "cached_input": price.cached_input_nanos_per_mtok,
        "output": price.output_nanos_per_mtok,
        "tiers": [
            [
                tier.min_input_tokens,
                tier.input_nanos_per_mtok,
                tier.cached_input_nanos_per_mtok,
                tier.output_nanos_per_mtok,
            ]
            for tier in price.tiers
        ],
    }
    canonical = json.dumps(rates, sort_keys=True, separators=(",", ":"))
    return f"{model_name}@{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


def _with_price_version(model: Model) -> Model:
    price = dataclasses.replace(model.price, version=price_version(model.name, model.price))
    return dataclasses.replace(model, price=price)


def compile_snapshot(config: Config, revision: int, created_at_unix_ms: int) -> Snapshot:
    """The snapshot a sidecar receives for this configuration."""
    draft = Snapshot(
        version="",
        revision=revision,
        created_at_unix_ms=created_at_unix_ms,
        models=tuple(_with_price_version(m) for m in config.models),
        capabilities=config.capabilities,
        tenants=config.tenants,
        budgets=config.budgets,
        # Always the full JSON form, defaults included: the snapshot states exactly
        # the rules a sidecar enforces, whatever the file left out.
        guardrails=guardrails_to_json(config.guardrails),
        governance=governance_to_json(config.governance),
    )
    return dataclasses.replace(draft, version=content_version(draft))


def with_revision(snapshot: Snapshot, revision: int, created_at_unix_ms: int) -> Snapshot:
    """The same content under a revision number; the version does not change."""
    return dataclasses.replace(snapshot, revision=revision, created_at_unix_ms=created_at_unix_ms)
