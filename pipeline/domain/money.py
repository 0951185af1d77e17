"""Money: integer cents in storage, Decimal in code, never float arithmetic."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
# A bid above this is a typo or an attack, never a real lead price.
MAX_BID = Decimal("10000.00")


def to_cents(value: Decimal | int | float | str) -> int:
    """Exact cents from a JSON number (a float is read through its shortest repr)."""
    amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_cents(cents: int | None) -> Decimal | None:
    return None if cents is None else (Decimal(cents) / 100).quantize(CENT)


def as_number(cents: int | None) -> float | None:
    """For JSON output only: the price as a JSON number with two decimals."""
    return None if cents is None else float(from_cents(cents))


def parse_bid(value: object) -> int | None:
    """Cents from a buyer's answer; None when it is not a sane price (negative, not finite, huge)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0 or amount > MAX_BID:
        return None
    return to_cents(amount)
