"""Money is integer 원. Units are converted at the edges, exactly, with Decimal — never floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Final, Literal

from pydantic import Field, Strict

from contracts.limits import MAX_WON

#: An amount of money in 원. Non-negative amounts use `Won`; signed changes use `WonDelta`. Strict:
#: `true` or `"5"` is not an amount; bounded by `MAX_WON` so every amount fits int64 with room to add.
Won = Annotated[int, Strict(), Field(ge=0, le=MAX_WON, description="amount in 원 (KRW), integer")]
WonDelta = Annotated[int, Strict(), Field(ge=-MAX_WON, le=MAX_WON, description="signed change in 원 (KRW), integer")]

Unit = Literal["원", "천원", "백만원", "억원", "조원"]

UNIT_FACTORS: Final[dict[str, int]] = {
    "원": 1,
    "천원": 1_000,
    "백만원": 1_000_000,
    "억원": 100_000_000,
    "조원": 1_000_000_000_000,
}


class UnitError(ValueError):
    """An unknown unit, or an amount that is not a whole number of 원 in that unit."""


def to_won(amount: int | str | Decimal, unit: str) -> int:
    """Convert an amount printed in `unit` to integer 원, refusing anything inexact.

    >>> to_won("1,375", "백만원")
    1375000000
    >>> to_won(Decimal("2.5"), "천원")
    2500
    """
    factor = UNIT_FACTORS.get(unit.strip())
    if factor is None:
        raise UnitError(f"unknown unit {unit!r}; expected one of {', '.join(UNIT_FACTORS)}")
    try:
        value = Decimal(amount.replace(",", "").strip()) if isinstance(amount, str) else Decimal(amount)
    except InvalidOperation as exc:
        raise UnitError(f"not a number: {amount!r}") from exc
    won = value * factor
    if won != won.to_integral_value():
        raise UnitError(f"{amount} {unit} is not a whole number of 원")
    return int(won)


def from_won(won: int, unit: str) -> Decimal:
    """Express integer 원 in another unit (exact Decimal, for display)."""
    factor = UNIT_FACTORS.get(unit)
    if factor is None:
        raise UnitError(f"unknown unit {unit!r}")
    return Decimal(won) / factor


def rate_percent(part: int, whole: int) -> Decimal | None:
    """part/whole as a percentage rounded half-up to 0.1 (how the reports print 집행률)."""
    if whole <= 0:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding="ROUND_HALF_UP")
