"""Token-bucket throttles: priority reserves, retry-after, and when tokens are taken."""

from __future__ import annotations

import pytest

from faregate.model import Action, Priority
from faregate.policy import Guardrails, Match, Throttle
from sidecar.decision import RouteRequest
from sidecar.throttle import ThrottleBook, compile_throttle
from tests.unit.sidecar.catalog import T0, Engine, make_snapshot, rule_names

REQUESTS = Throttle("chat-rps", requests_per_second=1, burst=10)  # default reserves: batch 0.2


def engine(*throttles: Throttle) -> Engine:
    return Engine(make_snapshot(guardrails=Guardrails(throttles=throttles)))


def ask(priority: Priority, tenant: str = "acme", **kw: object) -> RouteRequest:
    return RouteRequest("chat", tenant=tenant, priority=priority, input_tokens=1_000, **kw)  # type: ignore[arg-type]


def test_batch_is_throttled_while_interactive_passes_on_the_same_bucket() -> None:
    e = engine(REQUESTS)
    # Batch keeps 20% of 10 in reserve: it may draw while 3 or more remain.
    batch = [e.route(ask(Priority.BATCH)).action for _ in range(9)]
    assert batch == [Action.ALLOW] * 8 + [Action.THROTTLE]
    # Two requests are left, for interactive traffic only.
    assert e.route(ask(Priority.INTERACTIVE)).action is Action.ALLOW
    assert e.route(ask(Priority.INTERACTIVE)).action is Action.ALLOW
    refused = e.route(ask(Priority.INTERACTIVE))
    assert refused.action is Action.THROTTLE
    assert rule_names(refused)[-1] == "throttle:chat-rps"
    assert refused.model == ""
    assert refused.estimated_cost_nanos == 300_000


def test_background_keeps_a_larger_reserve_than_batch() -> None:
    e = engine(REQUESTS)
    background = [e.route(ask(Priority.BACKGROUND)).action for _ in range(7)]
    assert background == [Action.ALLOW] * 6 + [Action.THROTTLE]  # 40% of 10 kept
    assert e.route(ask(Priority.BATCH)).action is Action.ALLOW


@pytest.mark.parametrize("priority", [Priority.INTERACTIVE, Priority.BATCH])
def test_retry_after_is_when_this_class_can_pass(priority: Priority) -> None:
    e = engine(REQUESTS)
    while e.route(ask(priority)).action is Action.ALLOW:
        pass
    refused = e.route(ask(priority))
    assert refused.action is Action.THROTTLE
    # One request per second refills; batch must see 3 left (1 + reserve 2), interactive 1.
    assert refused.retry_after_ms == 1_000
    assert "retry in 1000 ms" in refused.reason
    e.now += refused.retry_after_ms - 1
    assert e.route(ask(priority)).action is Action.THROTTLE
    e.now += 1
    assert e.route(ask(priority)).action is Action.ALLOW


def test_token_bucket_counts_input_plus_max_output() -> None:
    # 6,000 tokens a minute: each request costs 1,000 in + 500 out.
    e = engine(Throttle("chat-tpm", tokens_per_minute=6_000))
    actions = [e.route(ask(Priority.INTERACTIVE)).action for _ in range(5)]
    assert actions == [Action.ALLOW] * 4 + [Action.THROTTLE]
    refused = e.route(ask(Priority.INTERACTIVE))
    assert refused.retry_after_ms == 15_000  # 1,500 tokens at 100 a second


def test_request_bigger_than_the_bucket_is_denied_not_throttled() -> None:
    e = engine(Throttle("chat-tpm", tokens_per_minute=1_000))
    decision = e.route(ask(Priority.INTERACTIVE))
    assert decision.action is Action.DENY
    assert decision.retry_after_ms == 0
    assert "can never pass" in decision.reason


def test_buckets_are_per_tenant() -> None:
    e = engine(Throttle("tiny-burst", requests_per_second=1, burst=1))
    assert e.route(ask(Priority.INTERACTIVE, "acme")).action is Action.ALLOW
    assert e.route(ask(Priority.INTERACTIVE, "acme")).action is Action.THROTTLE
    assert e.route(ask(Priority.INTERACTIVE, "globex")).action is Action.ALLOW


def test_rule_applies_only_to_matching_requests() -> None:
    e = engine(Throttle("acme-only", Match(tenant="acme"), requests_per_second=1, burst=1))
    for _ in range(3):
        assert e.route(ask(Priority.INTERACTIVE, "globex")).action is Action.ALLOW


def test_dry_runs_take_no_tokens() -> None:
    e = engine(Throttle("one", requests_per_second=1, burst=1))
    for _ in range(3):
        assert e.route(ask(Priority.INTERACTIVE, dry_run=True)).action is Action.ALLOW
    assert e.route(ask(Priority.INTERACTIVE)).action is Action.ALLOW
    assert e.route(ask(Priority.INTERACTIVE, dry_run=True)).action is Action.THROTTLE


def test_a_throttled_request_draws_from_no_bucket() -> None:
    generous = Throttle("generous", requests_per_second=100, burst=100)
    strict = Throttle("strict", requests_per_second=1, burst=1)
    e = engine(generous, strict)
    assert e.route(ask(Priority.INTERACTIVE)).action is Action.ALLOW
    for _ in range(5):
        assert e.route(ask(Priority.INTERACTIVE)).action is Action.THROTTLE
    checks = e.runtime.throttles.check(
        compile_throttle(generous), "acme", "chat", "interactive", 0, e.now
    )
    assert checks[0].level == 99  # only the allowed call drew


def test_book_forgets_refilled_buckets_when_full() -> None:
    book = ThrottleBook(max_buckets=10)
    throttle = compile_throttle(Throttle("t", requests_per_second=1, burst=1))
    for i in range(11):
        book.take(book.check(throttle, f"tenant-{i}", "chat", "interactive", 0, T0), T0)
    assert len(book) <= 10
    later = T0 + 10_000
    book.take(book.check(throttle, "tenant-new", "chat", "interactive", 0, later), later)
    book.take(book.check(throttle, "tenant-newer", "chat", "interactive", 0, later), later)
    assert len(book) <= 2
