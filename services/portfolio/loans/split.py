"""Pro-rata splits (DOMAIN.md): every disbursement, repayment and recovery is shared between the loan's
participants in proportion to their shares, each part rounded to the currency's minor units (half-even), and
the parts sum exactly to the whole: the rounding residue goes to the largest share."""

from __future__ import annotations

from decimal import Decimal

from shared.money import round_money


def split(amount: Decimal, currency: str, shares: dict[str, Decimal]) -> dict[str, Decimal]:
    if not shares or any(s <= 0 for s in shares.values()):
        raise ValueError("participants need positive shares")
    total = sum(shares.values(), Decimal(0))
    if total != 100:
        raise ValueError(f"shares must sum to 100, not {total}")
    if round_money(amount, currency) != amount:
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    parts = {name: round_money(amount * share / 100, currency) for name, share in shares.items()}
    # the largest share takes the residue (ties: the first in name order, so the split is deterministic)
    largest = sorted(shares, key=lambda name: (-shares[name], name))[0]
    parts[largest] += amount - sum(parts.values(), Decimal(0))
    return parts
