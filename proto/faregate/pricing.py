"""Money arithmetic: USD decimals in configuration, integer nano-USD everywhere else.

Prices are nano-USD per million tokens, so any list price with up to nine decimal
places of a dollar per million tokens is exact. A cost is rounded up to the next
whole nano once per record (never per component), so estimates never undershoot.
Pure: must not import gRPC, SQLAlchemy or the wire types.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from faregate.model import Model, Price

NANOS_PER_USD = 1_000_000_000
TOKENS_PER_MTOK = 1_000_000
# The most tokens one field of one call may claim: far beyond any real call, and
# small enough that its cost at any sane price fits in a signed 64-bit integer.
MAX_TOKENS = 10_000_000_000


class MoneyError(ValueError):
    """A USD amount that cannot be represented exactly in nanos."""


def usd_to_nanos(value: Decimal | str | int) -> int:
    """Convert a USD amount to nanos exactly, refusing floats and sub-nano precision."""
    if isinstance(value, float):
        raise MoneyError("money must not be a float; write it as a string or decimal")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise MoneyError(f"not a number: {value!r}") from exc
    if not amount.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    nanos = amount * NANOS_PER_USD
    if nanos != nanos.to_integral_value():
        raise MoneyError(f"{value} has more precision than one nano-USD")
    return int(nanos)


def nanos_to_usd(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS_PER_USD


def format_usd(nanos: int, places: int = 4) -> str:
    """Human format, e.g. `$12.3456`; small non-zero amounts keep their significant digits."""
    usd = nanos_to_usd(nanos)
    if nanos and abs(usd) < Decimal(10) ** -places:
        return f"${usd:.9f}".rstrip("0")
    return f"${usd:,.{places}f}"


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def rates_for(price: Price, input_tokens: int) -> tuple[int, int, int]:
    """(input, cached input, output) nanos per Mtok applicable at this prompt size."""
    rates = (
        price.input_nanos_per_mtok,
        price.cached_input_nanos_per_mtok,
        price.output_nanos_per_mtok,
    )
    for tier in price.tiers:
        if input_tokens >= tier.min_input_tokens:
            rates = (
                tier.input_nanos_per_mtok,
                tier.cached_input_nanos_per_mtok,
                tier.output_nanos_per_mtok,
            )
    return rates


def cost_nanos(
    price: Price, input_tokens: int, cached_input_tokens: int, output_tokens: int
) -> int:
    """Cost of one call. `input_tokens` counts the whole prompt, cached part included."""
    input_tokens = max(0, input_tokens)
    cached = min(max(0, cached_input_tokens), input_tokens)
    output_tokens = max(0, output_tokens)
    input_rate, cached_rate, output_rate = rates_for(price, input_tokens)
    scaled = (
        (input_tokens - cached) * input_rate + cached * cached_rate + output_tokens * output_rate
    )
    return _ceil_div(scaled, TOKENS_PER_MTOK)


def worst_case_cost_nanos(model: Model, input_tokens: int, max_output_tokens: int) -> int:
    """What a call may cost at most: full input price, every allowed output token."""
    return cost_nanos(model.price, input_tokens, 0, max_output_tokens)
