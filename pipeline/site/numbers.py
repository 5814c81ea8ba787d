"""The site's one number format, for every number a page shows (docs/FRONTEND.md, "Numbers").

``static/common.js`` has the same two functions (``formatNumber``, ``formatSigned``); both
are tested against the one table of cases in ``tests/data/number_format.json``, so a value
reads the same in a page's HTML and in what its script draws.

The rule: :data:`DIGITS` significant digits, rounded half away from zero (on the float's
exact value, as JavaScript's ``toExponential`` does); plain notation while the rounded
number's decimal exponent is in ``[-4, DIGITS)`` (0.0001 to 9999), else ``1.2e10`` /
``-1e-12`` (no "+", no leading zeros in the exponent); trailing zeros dropped; zero is
"0" (never "-0"); None, NaN and ±inf are :data:`DASH`. The signed form puts "+" before a
positive number.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, localcontext

DASH = "\u2013"  # en dash: a missing number
DIGITS = 4


def format_number(value) -> str:
    """``1234.5`` -> "1235", ``100`` -> "100", ``1.2e10`` -> "1.2e10", None/NaN/inf -> DASH."""
    if value is None:
        return DASH
    x = float(value)
    if not math.isfinite(x):
        return DASH
    if x == 0:
        return "0"
    with localcontext() as context:
        context.rounding = ROUND_HALF_UP
        mantissa, exponent = format(Decimal(abs(x)), f".{DIGITS - 1}e").split("e")
    return ("-" if x < 0 else "") + _lay_out(mantissa.replace(".", ""), int(exponent))


def format_signed(value) -> str:
    """As :func:`format_number`, with "+" before a positive number (attribution, scores)."""
    text = format_number(value)
    return "+" + text if text != DASH and float(value) > 0 else text


def _lay_out(digits: str, exponent: int) -> str:
    """DIGITS decimal digits ("1235") and the first one's exponent -> the number's text."""
    if exponent < -4 or exponent >= DIGITS:
        return _trim(digits[0], digits[1:]) + f"e{exponent}"
    if exponent < 0:
        return _trim("0", "0" * (-exponent - 1) + digits)
    return _trim(digits[: exponent + 1], digits[exponent + 1 :])


def _trim(whole: str, fraction: str) -> str:
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole
