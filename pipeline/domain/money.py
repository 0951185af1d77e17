"""Money: integer cents in storage, Decimal in code, never float arithmetic."""
from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation

CENT = Decimal("0.01")
# A bid above this is a typo or an attack, never a real lead price.
MAX_BID = Decimal("10000.00")
# A bid sent as text: ASCII digits with an optional fraction, nothing else ("1_000", "١٢",
# "1e3", " 12" are not prices even though Python's Decimal reads them).
PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)


def to_cents(value: Decimal | int | float | str) -> int:
    """Cents from an amount, a sub-cent rest cut off: a buyer never pays more than it said.

    A float (a JSON number) is read through its shortest repr, so 0.29 is 29 cents.
    """
    amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_DOWN))


def from_cents(cents: int | None) -> Decimal | None:
    return None if cents is None else (Decimal(cents) / 100).quantize(CENT)


def as_number(cents: int | None) -> float | None:
    """For JSON output only: the price as a JSON number with two decimals."""
    if cents is None:
        return None
    if type(cents) is int and -2**53 < cents < 2**53:
        # The float nearest the exact cents/100 either way: a float division of two integers
        # below 2**53 is correctly rounded, as is float() of the exact Decimal quotient.
        return cents / 100
    return float(Decimal(cents) / 100)          # a sum PostgreSQL returns is a Decimal


def parse_bid(value: object, *, currency_sign: bool = False) -> int | None:
    """Cents from a buyer's bid: a JSON number, or a plain decimal string ("22.40"; "$22.40"
    where the integration allows the sign). None when it is no sane price: negative, not
    finite, huge, or written any other way."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        amount = Decimal(value) if -1 < value <= MAX_BID else None
    elif isinstance(value, (float, Decimal)):
        amount = Decimal(str(value)) if isinstance(value, float) else value
    elif isinstance(value, str):
        text = value[1:] if currency_sign and value.startswith("$") else value
        amount = Decimal(text) if len(text) < 40 and PLAIN_DECIMAL.fullmatch(text) else None
    else:
        return None
    try:
        if amount is None or not amount.is_finite() or amount < 0 or amount > MAX_BID:
            return None
    except InvalidOperation:           # a signalling NaN refuses even to be compared
        return None
    return to_cents(amount)
