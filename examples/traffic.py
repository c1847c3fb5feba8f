"""The demo's synthetic traffic: who calls which capability, how often, with what prompts.

Each `Profile` draws realistic token counts for one kind of call (a shared system prompt
is sometimes served from the provider's cache); latency is a number drawn per model
tier, never waited for. Pure and seeded by the caller's RNG: must not import gRPC,
the clients or the servers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from faregate.model import Complexity, Sensitivity

# Simulated model latency per tier: fixed overhead plus time per generated token (ms).
LATENCY_MS = {"large": (450, 22.0), "small": (150, 8.0), "local": (90, 12.0)}
FAILURE_RATE = 0.02


Tokens = tuple[int, int, int]  # input (whole prompt), cached part of it, output


@dataclass(frozen=True)
class Profile:
    """One stream of traffic: who calls which capability, how often, with what prompts."""

    capability: str
    service: str
    team: str
    weight: float
    draw: Callable[[random.Random], Tokens]
    sensitivity: Sensitivity = Sensitivity.INTERNAL
    complexity: Complexity = Complexity.UNSPECIFIED
    # Output that grows with the prompt (translation) asks for a bigger cap; 0 uses the
    # capability's default.
    output_cap_per_input_token: float = 0.0


def _cached(rng: random.Random, prompt: int, chance: float, low: float, high: float) -> int:
    """Part of the prompt served from the provider's cache (a shared system prompt)."""
    return int(prompt * rng.uniform(low, high)) if rng.random() < chance else 0


def _classification(rng: random.Random) -> Tokens:
    prompt = max(80, int(rng.gauss(300, 60)))
    return prompt, _cached(rng, prompt, 0.6, 0.5, 0.8), rng.randint(3, 8)


def _sentiment(rng: random.Random) -> Tokens:
    prompt = max(40, int(rng.gauss(150, 40)))
    return prompt, _cached(rng, prompt, 0.5, 0.4, 0.7), rng.randint(2, 4)


def _summarization(rng: random.Random) -> Tokens:
    long_document = rng.random() < 0.2
    prompt = rng.randint(8_000, 30_000) if long_document else rng.randint(2_000, 8_000)
    return prompt, _cached(rng, prompt, 0.2, 0.1, 0.3), rng.randint(200, 600)


def _forecasting(rng: random.Random) -> Tokens:
    prompt = rng.randint(3_000, 8_000)
    return prompt, _cached(rng, prompt, 0.3, 0.3, 0.6), rng.randint(500, 1_200)


def _translation(rng: random.Random) -> Tokens:
    prompt = rng.randint(500, 4_000)
    return prompt, 0, int(prompt * rng.uniform(0.9, 1.15))


PROFILES = (
    Profile("classification", "support-bot", "support", 0.38, _classification),
    Profile("sentiment", "support-bot", "support", 0.32, _sentiment),
    Profile("summarization", "risk-engine", "risk", 0.13, _summarization),
    Profile(
        "forecasting", "risk-engine", "planning", 0.07, _forecasting, complexity=Complexity.HIGH
    ),
    Profile(
        "translation",
        "legal-docs",
        "legal",
        0.10,
        _translation,
        sensitivity=Sensitivity.CONFIDENTIAL,
        output_cap_per_input_token=1.2,
    ),
)


def simulated_latency_ms(tier: str, output_tokens: int, rng: random.Random) -> int:
    overhead, per_token = LATENCY_MS.get(tier, (300, 10.0))
    return int((overhead + per_token * output_tokens) * rng.uniform(0.7, 1.4))
