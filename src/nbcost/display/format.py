"""How nbcost writes money, shares, times and counts for people: one rule, used everywhere in
Python (summaries, the live widget's lines, ``%cost``, reports). The lab extension's
``format.ts`` follows the same rule; both are tested on ``tests/cases/format.json``.

Money (Decimal in, never float):

* only unpriced usage → ``unpriced``; nothing → ``$0.00``;
* 0 < |x| < $0.00005 → ``<$0.0001`` (it would round to zero, but it is not zero);
* what rounds (half up) to under $1 at 4 places → 4 places (``$0.0123``);
* else 2 places with thousands separators (``$1,234.50``); negatives lead with ``-``;
* a priced part beside unpriced usage → ``$0.0123 + unpriced``.

A share is ``part / whole``: ``–`` when the whole is 0, ``<1 %`` for a sliver, else whole percent
rounded half up with separators (``4,000 %``), so an overshoot reads as what it is.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

__all__ = ["format_bytes", "format_count", "format_per_mtok", "format_percent", "format_seconds",
           "format_seconds_pm", "format_usd", "plural"]

_TINY = Decimal("0.00005")  # below this a cost rounds to $0.0000 at 4 places
_FOUR = Decimal("0.0001")
_TWO = Decimal("0.01")
_ONE = Decimal(1)
_HALF_PERCENT = Decimal("0.005")


def _decimal(value: Decimal | str | int | float | None) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def format_usd(amount: Decimal | str | None, unpriced: bool = False) -> str:
    """``$0.0123``; ``$0.0123 + unpriced`` when part had no price; ``unpriced`` when none had."""
    value = _decimal(amount) or Decimal(0)
    if unpriced and not value:
        return "unpriced"
    text = _usd(value)
    return f"{text} + unpriced" if unpriced else text


def _usd(value: Decimal) -> str:
    if not value:
        return "$0.00"
    sign, size = ("-" if value < 0 else ""), abs(value)
    if size < _TINY:
        return f"{sign}<$0.0001"
    four = size.quantize(_FOUR, rounding=ROUND_HALF_UP)
    if four < _ONE:
        return f"{sign}${four}"
    return f"{sign}${size.quantize(_TWO, rounding=ROUND_HALF_UP):,}"


def format_per_mtok(price: Decimal | str | None) -> str:
    """A price per million tokens as price lists write it: ``$0.60/Mtok``, ``$12.50/Mtok``;
    below a cent, two significant digits (``$0.0042/Mtok``); ``–`` when unknown."""
    value = _decimal(price)
    if value is None:
        return "–"
    if value >= Decimal("0.01") or not value:
        return f"${value.quantize(_TWO, rounding=ROUND_HALF_UP):,}/Mtok"
    two_digits = Decimal(1).scaleb(value.adjusted() - 1)
    return f"${format(value.quantize(two_digits, rounding=ROUND_HALF_UP), 'f')}/Mtok"


def format_percent(part: Decimal | str | float | None, whole: Decimal | str | float | None) -> str:
    """``part`` as a share of ``whole``: ``80 %``, ``4,000 %``, ``<1 %``; ``–`` with no whole."""
    part_d, whole_d = _decimal(part) or Decimal(0), _decimal(whole)
    if not whole_d:
        return "–"
    if not part_d:
        return "0 %"
    share = part_d / whole_d
    if abs(share) < _HALF_PERCENT:
        return "<1 %"
    return f"{(share * 100).quantize(_ONE, rounding=ROUND_HALF_UP):,} %"


def format_seconds(seconds: float) -> str:
    """``350 ms``, ``2.40 s``, ``3 min 12 s``, ``2 h 5 min``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 120:
        return f"{minutes:.0f} min {secs:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours:.0f} h {minutes:.0f} min"


def format_seconds_pm(seconds: float, uncertainty_s: float) -> str:
    """A measured time with its error bar, in one unit so they compare: ``0.3 s ± 0.4 s``."""
    return f"{seconds:.1f} s ± {uncertainty_s:.1f} s"


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def format_count(count: float) -> str:
    """A whole count with thousands separators: ``6,450``."""
    return f"{int(count):,}"


def plural(count: float, word: str) -> str:
    """``1 call``, ``3 calls``, ``6,450 tokens``."""
    return f"{format_count(count)} {word}{'' if int(count) == 1 else 's'}"
