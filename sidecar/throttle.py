"""Token buckets with priority reserves: how throttle rules refuse traffic.

A throttle rule has up to two buckets per (rule, tenant, capability): one of
requests (refilled at `requests_per_second`, holding `burst`, by default one
second's worth and at least one request) and one of tokens (refilled at
`tokens_per_minute`, holding one minute's worth; a request costs its input plus
its maximum output tokens). Fairness between priority classes is a reserve: a
class with reserve r may only take from a bucket while at least r * capacity would
remain after it, so batch traffic (r = 0.2 by default) is refused while the last
fifth of a bucket is still open to interactive traffic (r = 0). A refused request
learns how long until its class could pass, assuming no one else draws meanwhile;
one that could not pass even from a full bucket is told so (`never`).

Checking never changes a bucket; `take` does, and the engine calls it only for
decisions that let the call run (never for dry runs). Buckets refill lazily from
the `now_ms` each call passes in: this module reads no clock.
Pure: must not import gRPC or the wire types (`faregate.v1`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from faregate.policy import DEFAULT_RESERVES, Throttle

REQUESTS = "requests"
TOKENS = "tokens"
DEFAULT_MAX_BUCKETS = 100_000
# Float refill arithmetic may land a hair below the level it was computed to reach.
_SLACK = 1e-6


@dataclass(frozen=True, slots=True)
class BucketSpec:
    kind: str  # REQUESTS or TOKENS
    capacity: float
    refill_per_ms: float


@dataclass(frozen=True, slots=True)
class CompiledThrottle:
    rule: Throttle
    buckets: tuple[BucketSpec, ...]

    def reserve(self, priority: str) -> float:
        """The share of each bucket kept from `priority`; unlisted classes keep the default."""
        share = self.rule.reserves.get(priority)
        return share if share is not None else DEFAULT_RESERVES.get(priority, 0.0)


def compile_throttle(rule: Throttle) -> CompiledThrottle:
    buckets = []
    if rule.requests_per_second > 0:
        capacity = rule.burst if rule.burst > 0 else max(1.0, float(rule.requests_per_second))
        buckets.append(BucketSpec(REQUESTS, float(capacity), rule.requests_per_second / 1000))
    if rule.tokens_per_minute > 0:
        buckets.append(
            BucketSpec(TOKENS, float(rule.tokens_per_minute), rule.tokens_per_minute / 60_000)
        )
    return CompiledThrottle(rule, tuple(buckets))


class BucketCheck(NamedTuple):
    """One bucket's answer for one request (a tuple: built per request, on the hot path)."""

    spec: BucketSpec
    key: tuple[str, str, str, str]
    cost: float
    level: float  # what the bucket holds now, refill included
    needed: float  # cost plus the class's reserve
    wait_ms: int  # 0 when the request passes now
    never: bool  # cannot pass even from a full bucket

    @property
    def passes(self) -> bool:
        return self.wait_ms == 0 and not self.never

    def explain(self, priority: str) -> str:
        unit = "request" if self.spec.kind == REQUESTS else "tokens"
        reserve = self.needed - self.cost
        head = (
            f"{self.spec.kind} bucket holds {self.level:.1f} of {self.spec.capacity:g}; "
            f"{priority} needs {self.cost:g} {unit}"
            + (f" + {reserve:g} reserved for higher priorities" if reserve else "")
        )
        if self.never:
            return head + ", more than the bucket can ever hold for it"
        return head + f"; retry in {self.wait_ms} ms"


class _Bucket:
    __slots__ = ("level", "spec", "updated_ms")

    def __init__(self, level: float, updated_ms: int, spec: BucketSpec) -> None:
        self.level = level
        self.updated_ms = updated_ms
        self.spec = spec

    def full_at(self, now_ms: int) -> bool:
        elapsed = max(0, now_ms - self.updated_ms)
        return self.level + elapsed * self.spec.refill_per_ms >= self.spec.capacity


class ThrottleBook:
    """Every bucket this sidecar keeps, keyed by (rule, kind, tenant, capability)."""

    def __init__(self, max_buckets: int = DEFAULT_MAX_BUCKETS) -> None:
        self._buckets: dict[tuple[str, str, str, str], _Bucket] = {}
        self._max = max_buckets

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: tuple[str, str, str, str], spec: BucketSpec, now_ms: int) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return spec.capacity  # a bucket nobody drew from is full
        elapsed = max(0, now_ms - bucket.updated_ms)
        return min(spec.capacity, bucket.level + elapsed * spec.refill_per_ms)

    def check(
        self,
        throttle: CompiledThrottle,
        tenant: str,
        capability: str,
        priority: str,
        tokens: int,
        now_ms: int,
    ) -> list[BucketCheck]:
        """How each of the rule's buckets answers this request; changes nothing."""
        reserve = throttle.reserve(priority)
        checks = []
        for spec in throttle.buckets:
            key = (throttle.rule.name, spec.kind, tenant, capability)
            cost = 1.0 if spec.kind == REQUESTS else float(tokens)
            level = self._level(key, spec, now_ms)
            needed = cost + reserve * spec.capacity
            never = needed > spec.capacity + _SLACK
            if never or level + _SLACK >= needed:
                wait_ms = 0
            else:
                wait_ms = max(1, math.ceil((needed - level) / spec.refill_per_ms))
            checks.append(BucketCheck(spec, key, cost, level, needed, wait_ms, never))
        return checks

    def take(self, checks: list[BucketCheck], now_ms: int) -> None:
        """Draw what `checks` (made at this same `now_ms`) said each bucket would give."""
        for check in checks:
            bucket = self._buckets.get(check.key)
            level = check.level
            if bucket is None:
                self._buckets[check.key] = _Bucket(level - check.cost, now_ms, check.spec)
            else:
                bucket.level = level - check.cost
                bucket.updated_ms = max(bucket.updated_ms, now_ms)
                bucket.spec = check.spec  # a new snapshot may have resized it
        if len(self._buckets) > self._max:
            self._forget_idle(now_ms)

    def _forget_idle(self, now_ms: int) -> None:
        """Bound memory when callers invent tenants: drop buckets that refilled completely
        (they equal a fresh one), then, if still too many, the least recently drawn."""
        for key in [k for k, b in self._buckets.items() if b.full_at(now_ms)]:
            del self._buckets[key]
        target = self._max * 9 // 10
        if len(self._buckets) > target:
            ordered = sorted(self._buckets, key=lambda k: self._buckets[k].updated_ms)
            for key in ordered[: len(self._buckets) - target]:
                del self._buckets[key]
