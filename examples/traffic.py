"""The demo's synthetic traffic: who calls which capability, how often, with what prompts.

Each `Profile` draws realistic token counts for one kind of call (a shared system prompt
is sometimes served from the provider's cache); latency is a number drawn per model
tier, never waited for. Together the profiles make every rule in examples/faregate.yaml
fire: a bursty batch backfill runs into the classification throttle, hard summaries
pick large models and some hit the cost ceiling, high-risk forecasts need approval,
confidential translation stays on local models. Pure and seeded by the caller's RNG:
must not import gRPC, the clients or the servers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from faregate.model import Complexity, Priority, RiskLevel, Sensitivity

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
    priority: Priority = Priority.INTERACTIVE
    risk: RiskLevel = RiskLevel.LOW
    # A job instead of steady traffic: every `every_s` seconds it sends between
    # burst[0] and burst[1] requests at once, on top of the steady rate.
    every_s: float = 0.0
    burst: tuple[int, int] = (1, 1)


def _cached(rng: random.Random, prompt: int, chance: float, low: float, high: float) -> int:
    """Part of the prompt served from the provider's cache (a shared system prompt)."""
    return int(prompt * rng.uniform(low, high)) if rng.random() < chance else 0


def _classification(rng: random.Random) -> Tokens:
    prompt = max(80, int(rng.gauss(300, 60)))
    return prompt, _cached(rng, prompt, 0.6, 0.5, 0.8), rng.randint(3, 8)


def _sentiment(rng: random.Random) -> Tokens:
    prompt = max(40, int(rng.gauss(150, 40)))
    return prompt, _cached(rng, prompt, 0.5, 0.4, 0.7), rng.randint(2, 4)


def _document(rng: random.Random) -> Tokens:
    prompt = rng.randint(2_000, 8_000)
    return prompt, _cached(rng, prompt, 0.2, 0.1, 0.3), rng.randint(200, 600)


def _long_document(rng: random.Random) -> Tokens:
    # Past ~27k input tokens even the cheapest large model's worst case is over the
    # summarization-cost ceiling, so those walk down the downgrade chain.
    prompt = rng.randint(8_000, 40_000)
    return prompt, _cached(rng, prompt, 0.2, 0.1, 0.3), rng.randint(300, 600)


def _transcript(rng: random.Random) -> Tokens:
    prompt = rng.randint(1_500, 5_000)
    return prompt, _cached(rng, prompt, 0.5, 0.2, 0.4), rng.randint(100, 300)


def _forecasting(rng: random.Random) -> Tokens:
    prompt = rng.randint(3_000, 8_000)
    return prompt, _cached(rng, prompt, 0.3, 0.3, 0.6), rng.randint(500, 1_200)


def _translation(rng: random.Random) -> Tokens:
    long_contract = rng.random() < 0.1  # its output cap meets the translation-output ceiling
    prompt = rng.randint(5_500, 8_000) if long_contract else rng.randint(500, 4_000)
    return prompt, 0, int(prompt * rng.uniform(0.9, 1.15))


PROFILES = (
    Profile("classification", "support-bot", "support", 0.38, _classification),
    # A re-tagging backfill job: bursts of batch requests that drain the
    # support-classification bucket down to the share reserved for interactive traffic.
    Profile(
        "classification",
        "support-bot",
        "support",
        0.0,
        _classification,
        priority=Priority.BATCH,
        every_s=6.0,
        burst=(80, 120),
    ),
    Profile("sentiment", "support-bot", "support", 0.30, _sentiment),
    # Call transcripts summarised for ticket handover (support may not use claude-sonnet-4).
    Profile(
        "summarization", "support-bot", "support", 0.03, _transcript, complexity=Complexity.MEDIUM
    ),
    # The risk team's documents: mostly everyday ones, a fifth long and hard.
    Profile("summarization", "risk-engine", "risk", 0.10, _document, complexity=Complexity.MEDIUM),
    Profile(
        "summarization", "risk-engine", "risk", 0.025, _long_document, complexity=Complexity.HIGH
    ),
    Profile(
        "forecasting", "risk-engine", "planning", 0.05, _forecasting, complexity=Complexity.HIGH
    ),
    # Forecasts that feed credit decisions: high risk, so governance wants a human.
    Profile(
        "forecasting",
        "risk-engine",
        "planning",
        0.02,
        _forecasting,
        complexity=Complexity.HIGH,
        risk=RiskLevel.HIGH,
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
