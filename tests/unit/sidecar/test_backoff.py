"""Reconnect backoff: exponential ceilings with full jitter, reset after success."""

from __future__ import annotations

import pytest

from sidecar.backoff import Backoff


def ceilings_drawn(backoff: Backoff, attempts: int, draws: list[float]) -> list[float]:
    for _ in range(attempts):
        backoff.next_delay()
    return draws


def test_ceiling_doubles_from_half_a_second_to_thirty() -> None:
    draws: list[float] = []
    backoff = Backoff(uniform=lambda low, high: draws.append(high) or high)
    assert ceilings_drawn(backoff, 9, draws) == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_full_jitter_draws_from_zero() -> None:
    lows: list[float] = []
    backoff = Backoff(uniform=lambda low, high: lows.append(low) or low)
    assert backoff.next_delay() == 0.0
    assert lows == [0.0]


def test_reset_starts_over() -> None:
    backoff = Backoff(uniform=lambda low, high: high)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_delays_stay_within_the_ceiling() -> None:
    backoff = Backoff()
    for _ in range(100):
        ceiling = backoff.ceiling()
        assert 0 <= backoff.next_delay() <= ceiling <= 30


@pytest.mark.parametrize(("initial", "maximum"), [(0, 1), (2, 1), (-1, 5)])
def test_nonsense_settings_are_refused(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, maximum)
