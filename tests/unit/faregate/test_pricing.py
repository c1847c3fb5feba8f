"""Money arithmetic: exact nanos, rounding up once, tiers, cached input."""

from __future__ import annotations

from decimal import Decimal

import pytest

from faregate.model import Locality, Model, Price, PriceTier
from faregate.pricing import (
    MoneyError,
    cost_nanos,
    format_usd,
    nanos_to_usd,
    usd_to_nanos,
    worst_case_cost_nanos,
)

FLASH = Price(100_000_000, 25_000_000, 400_000_000)
TINY = Price(1_500_000, 1_500_000, 1_500_000)  # 1.5 nano-USD per token
TIERED = Price(
    1_250_000_000,
    310_000_000,
    10_000_000_000,
    tiers=(PriceTier(200_000, 2_500_000_000, 625_000_000, 15_000_000_000),),
)


@pytest.mark.parametrize(
    ("usd", "nanos"),
    [
        ("0", 0),
        ("0.15", 150_000_000),
        ("2.50", 2_500_000_000),
        (Decimal("0.000000001"), 1),
        (3, 3_000_000_000),
        ("-1.5", -1_500_000_000),
    ],
)
def test_usd_to_nanos_is_exact(usd: str | Decimal | int, nanos: int) -> None:
    assert usd_to_nanos(usd) == nanos
    assert nanos_to_usd(nanos) == Decimal(usd)


@pytest.mark.parametrize("bad", ["0.0000000001", "abc", "NaN", "Infinity"])
def test_usd_to_nanos_refuses_what_it_cannot_represent(bad: str) -> None:
    with pytest.raises(MoneyError):
        usd_to_nanos(bad)


def test_floats_are_refused() -> None:
    with pytest.raises(MoneyError, match="float"):
        usd_to_nanos(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("price", "tokens", "expected"),
    [
        # (input, cached, output) tokens; input counts the cached part too.
        (FLASH, (1_000_000, 0, 0), 100_000_000),
        (FLASH, (1_000_000, 1_000_000, 0), 25_000_000),
        (FLASH, (1_000_000, 400_000, 1_000_000), 60_000_000 + 10_000_000 + 400_000_000),
        (FLASH, (1, 0, 0), 100),
        (TINY, (1, 0, 0), 2),  # 1.5 nanos round up to a whole nano
        (TINY, (3, 0, 0), 5),  # rounded once per record (4.5), not per token (6)
        (FLASH, (0, 5, 0), 0),  # cached never exceeds input
        (TIERED, (199_999, 0, 0), 249_998_750),
        (TIERED, (200_000, 0, 1000), 500_000_000 + 15_000_000),
    ],
)
def test_cost_nanos(price: Price, tokens: tuple[int, int, int], expected: int) -> None:
    assert cost_nanos(price, *tokens) == expected


def test_worst_case_uses_full_input_price_and_every_output_token() -> None:
    model = Model("m", "p", "small", Locality.EXTERNAL, 1000, 100, FLASH)
    assert worst_case_cost_nanos(model, 1_000_000, 1_000_000) == 500_000_000


def test_format_usd() -> None:
    assert format_usd(12_345_600_000) == "$12.3456"
    assert format_usd(0) == "$0.0000"
    assert format_usd(1_500) == "$0.0000015"
