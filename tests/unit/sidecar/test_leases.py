"""The lease book: admission against leases, settling, expiry, rollover and requests."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from faregate.budget_rules import OFFLINE_LEASE_PREFIX
from faregate.model import Budget
from faregate.periods import period_key
from sidecar.leases import (
    REQUEST_RETRY_MS,
    Grant,
    LeaseBook,
    Verdict,
    skew_margin_ms,
)

NOW = int(datetime(2026, 12, 4, 12, tzinfo=UTC).timestamp() * 1000)
MONO = 1_000_000
DAILY = Budget("daily", 1_000_000, "day")
TEAM = Budget("team", 10_000_000, "month", team="ops")
ALLOWANCE = Budget(
    "offline-ok",
    1_000_000,
    "day",
    offline_policy="allowance",
    offline_allowance_nanos=300,
    offline_max_duration_ms=60_000,
)


def grant(
    budget: Budget, granted: int, *, ttl_ms: int = 30_000, at: int = NOW, **kw: object
) -> Grant:
    key = period_key(budget.period, budget.time_zone, at)
    return Grant(budget.name, f"ls-{budget.name}-{key}", granted, ttl_ms, period_key=key, **kw)  # type: ignore[arg-type]


def book_with(*grants: tuple[Budget, int]) -> LeaseBook:
    book = LeaseBook("inc-1")
    book.configure([b for b, _ in grants])
    for budget, amount in grants:
        book.apply_grant(grant(budget, amount), MONO, NOW)
    return book


def test_a_call_must_fit_every_covering_budget_or_takes_nothing() -> None:
    book = book_with((DAILY, 1_000), (TEAM, 500))
    assert book.reserve([(DAILY, 600), (TEAM, 600)], MONO, NOW) is None
    # Nothing was taken from the budget that did fit.
    assert book.check(DAILY, 1_000, MONO, NOW).verdict is Verdict.FITS
    held = book.reserve([(DAILY, 400), (TEAM, 400)], MONO, NOW)
    assert held is not None and {h.budget for h in held} == {"daily", "team"}
    assert book.check(TEAM, 101, MONO, NOW).verdict is Verdict.SHORT
    assert book.check(TEAM, 100, MONO, NOW).verdict is Verdict.FITS


def test_settle_refunds_the_difference_and_charges_each_lease() -> None:
    book = book_with((DAILY, 1_000))
    held = book.reserve([(DAILY, 800)], MONO, NOW)
    assert held is not None
    assert book.check(DAILY, 201, MONO, NOW).verdict is Verdict.SHORT
    charges = book.settle(held, 300, MONO)
    assert [(c.budget, c.reserved_nanos) for c in charges] == [("daily", 800)]
    assert charges[0].lease_id == held[0].lease_id and charges[0].period_key == "2026-12-04"
    (view,) = book.leases(MONO)
    assert (view.spent_nanos, view.reserved_nanos) == (300, 0)
    assert book.check(DAILY, 700, MONO, NOW).verdict is Verdict.FITS


def test_estimate_mode_overshoot_is_charged_in_full() -> None:
    book = book_with((DAILY, 1_000))
    held = book.reserve([(DAILY, 500)], MONO, NOW)
    assert held is not None
    book.settle(held, 900, MONO)  # the call cost more than its estimate
    (view,) = book.leases(MONO)
    assert view.spent_nanos == 900
    assert book.check(DAILY, 101, MONO, NOW).verdict is Verdict.SHORT


def test_deny_policy_admits_nothing_once_the_local_deadline_passes() -> None:
    book = book_with((DAILY, 1_000))
    deadline = MONO + 30_000 - skew_margin_ms(30_000)
    assert book.check(DAILY, 1, deadline - 1, NOW).verdict is Verdict.FITS
    assert book.check(DAILY, 1, deadline, NOW).verdict is Verdict.EXPIRED
    # A refresh grant revives it.
    book.apply_grant(grant(DAILY, 1_000), deadline + 5, NOW)
    assert book.check(DAILY, 1, deadline + 5, NOW).verdict is Verdict.FITS


def test_a_lease_the_control_plane_reopened_lower_is_taken_at_its_word() -> None:
    book = book_with((DAILY, 100_000))
    held = book.reserve([(DAILY, 40_000)], MONO, NOW)
    assert held is not None
    book.settle(held, 40_000, MONO)
    # Cut off past the TTL and the expiry margin: the control plane expired the
    # lease, returned its 60k remainder, and reopens it at applied + 30k.
    later = MONO + 20 * 60_000
    book.apply_grant(grant(DAILY, 70_000), later, NOW)
    assert book.check(DAILY, 30_001, later, NOW).verdict is Verdict.SHORT
    assert book.check(DAILY, 30_000, later, NOW).verdict is Verdict.FITS


def test_allowance_is_bounded_by_amount_and_duration() -> None:
    book = book_with((ALLOWANCE, 1_000))
    lapse = MONO + 30_000 - skew_margin_ms(30_000)
    first = book.reserve([(ALLOWANCE, 200)], lapse, NOW)
    assert first is not None and first[0].lease_id == OFFLINE_LEASE_PREFIX + "inc-1"
    assert book.check(ALLOWANCE, 101, lapse, NOW).verdict is Verdict.SHORT
    book.settle(first, 250, lapse + 1)  # spent, even past what was reserved
    assert book.check(ALLOWANCE, 51, lapse + 1, NOW).verdict is Verdict.SHORT
    assert book.check(ALLOWANCE, 50, lapse + 1, NOW).verdict is Verdict.FITS
    assert book.check(ALLOWANCE, 1, lapse + 60_000, NOW).verdict is Verdict.EXPIRED


def test_a_grant_for_a_new_period_replaces_the_lease_and_closes_the_old_one() -> None:
    book = book_with((DAILY, 1_000))
    held = book.reserve([(DAILY, 100)], MONO, NOW)
    assert held is not None
    tomorrow = NOW + 24 * 3_600_000
    book.apply_grant(grant(DAILY, 1_000, at=tomorrow), MONO + 1, tomorrow)
    assert book.take_closes() == []  # a call is still in flight on the old lease
    book.settle(held, 70, MONO + 2)
    (close,) = book.take_closes()
    assert (close.lease_id, close.spent_nanos, close.forfeit) == ("ls-daily-2026-12-04", 70, False)
    assert book.check(DAILY, 1_000, MONO + 2, tomorrow).verdict is Verdict.FITS


def test_the_end_of_a_period_retires_the_lease() -> None:
    book = book_with((DAILY, 1_000))
    tomorrow = NOW + 24 * 3_600_000
    assert book.check(DAILY, 1, MONO, tomorrow).verdict is Verdict.NO_LEASE
    book.tick(tomorrow)
    (close,) = book.take_closes()
    assert close.reason == "period over"
    (ask,) = book.requests(MONO, tomorrow)
    assert (ask.period_key, ask.current_lease_id) == ("2026-12-05", "")


def test_requests_at_first_need_low_water_and_refresh() -> None:
    book = LeaseBook("inc-1")
    needs: list[int] = []
    book.on_need(lambda: needs.append(1))
    book.configure([DAILY])
    assert needs == [1]  # asked eagerly
    (first,) = book.requests(MONO, NOW)
    assert first.requested_nanos == DAILY.limit_nanos // 10 and first.current_lease_id == ""
    assert book.requests(MONO + 1, NOW) == []  # in flight
    book.apply_grant(grant(DAILY, 100_000, refresh_after_ms=10_000), MONO + 2, NOW)
    assert book.requests(MONO + 3, NOW) == []
    held = book.reserve([(DAILY, 76_000)], MONO + 3, NOW)
    assert held is not None
    (low,) = book.requests(MONO + 4, NOW)  # 24,000 left < a quarter of 100,000
    assert low.reserved_nanos == 76_000 and low.current_lease_id == "ls-daily-2026-12-04"
    book.apply_grant(grant(DAILY, 200_000, refresh_after_ms=10_000), MONO + 5, NOW)
    assert book.requests(MONO + 6, NOW) == []
    (refresh,) = book.requests(MONO + 5 + 10_000, NOW)
    assert refresh.budget == "daily"


def test_a_short_answer_means_exhausted_and_is_not_asked_again_at_once() -> None:
    book = LeaseBook("inc-1")
    book.configure([DAILY])
    (ask,) = book.requests(MONO, NOW)
    book.apply_grant(grant(DAILY, ask.requested_nanos // 2, reason="fair share"), MONO, NOW)
    assert not book.topping_up("daily")
    book.note_need(DAILY, 10)
    assert book.requests(MONO + 1, NOW) == []
    assert len(book.requests(MONO + REQUEST_RETRY_MS, NOW)) == 1


OPS = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "settle", "grant", "expire", "regrant"]),
        st.integers(min_value=0, max_value=2_000),
        st.integers(min_value=0, max_value=100),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_strict_spent_plus_reserved_never_exceeds_granted(ops: list[tuple[str, int, int]]) -> None:
    book = book_with((DAILY, 1_000), (TEAM, 1_500))
    mono = MONO
    held: list[tuple[tuple[object, ...], int]] = []
    granted = {"daily": 1_000, "team": 1_500}
    for op, amount, percent in ops:
        if op == "reserve":
            reservation = book.reserve([(DAILY, amount), (TEAM, amount // 2)], mono, NOW)
            if reservation is not None:
                held.append((reservation, amount))
                # Admitted only within the latest grant, however it changed.
                for view in book.leases(mono):
                    assert view.spent_nanos + view.reserved_nanos <= view.granted_nanos, view
        elif op == "settle" and held:
            reservation, amount = held.pop(percent % len(held))
            # Strict: the actual cost is at most the worst case reserved.
            book.settle(reservation, amount // 2 * percent // 100, mono)  # type: ignore[arg-type]
        elif op == "grant":
            granted["daily"] += amount
            book.apply_grant(grant(DAILY, granted["daily"]), mono, NOW)
        elif op == "regrant":  # the control plane reopened the lease lower (it expired)
            book.apply_grant(grant(TEAM, amount), mono, NOW)
        elif op == "expire":
            mono += 31_000
        # What grew without a new grant is spend, never new admissions.
        daily = next(v for v in book.leases(mono) if v.budget == "daily")
        assert daily.spent_nanos + daily.reserved_nanos <= granted["daily"], daily
