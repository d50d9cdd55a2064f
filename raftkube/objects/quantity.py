"""Kubernetes resource quantities ("500m", "128Mi", "1.5Gi", "2e3") parsed exactly.

The grammar is Kubernetes': a signed decimal number followed by an optional suffix that
is a binary SI multiplier (Ki Mi Gi Ti Pi Ei), a decimal SI multiplier (n u m k M G T P E)
or a decimal exponent (e3, E-2). Values are kept as exact fractions, so "0.1" and "100m"
compare equal and nothing is lost to floating point.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
}
_QUANTITY_RE = re.compile(
    r"(?P<sign>[+-]?)(?P<number>\d+(?:\.\d*)?|\.\d+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE]?)"
)
# Kubernetes rejects quantities with absurd exponents; so do we (also bounds the work).
_MAX_EXPONENT = 30


class QuantityError(ValueError):
    """The text is not a valid quantity; str(error) says why."""


@dataclass(frozen=True, order=False)
class Quantity:
    """An exact quantity. `text` is what was parsed; `value` the exact number it means."""

    text: str
    value: Fraction

    def milli_value(self) -> int:
        """The value in thousandths, rounded up (cpu "250m" -> 250, "1" -> 1000)."""
        return math.ceil(self.value * 1000)

    def int_value(self) -> int:
        """The value rounded up to a whole number (memory "1Ki" -> 1024, "0.5" -> 1)."""
        return math.ceil(self.value)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value


def parse_quantity(text: str) -> Quantity:
    """Parse a quantity string; raise QuantityError naming the problem.

    Pure. Accepts exactly the Kubernetes grammar: no spaces, no empty string, no units
    other than the SI suffixes above.
    """
    if not isinstance(text, str):
        raise QuantityError(f"{text!r} is not a quantity: must be a string such as '500m'")
    match = _QUANTITY_RE.fullmatch(text)
    if match is None:
        raise QuantityError(
            f"{text!r} is not a valid quantity (expected a number with an optional suffix "
            "such as 500m, 2, 1.5Gi, 128Mi, 1e3)"
        )
    number = Fraction(match["number"].rstrip(".") or "0")
    if match["sign"] == "-":
        number = -number
    suffix = match["suffix"]
    if suffix in _BINARY:
        multiplier = Fraction(_BINARY[suffix])
    elif suffix[:1] in ("e", "E") and len(suffix) > 1:
        exponent = int(suffix[1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise QuantityError(f"{text!r} is not a valid quantity: exponent out of range")
        multiplier = Fraction(10) ** exponent
    else:
        multiplier = _DECIMAL[suffix]
    return Quantity(text=text, value=number * multiplier)


def is_quantity(text: str) -> bool:
    """True when `text` parses as a quantity."""
    try:
        parse_quantity(text)
    except QuantityError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def cpu_millis(text: str) -> int:
    """CPU quantity in millicores ("250m" -> 250, "2" -> 2000); 0 when malformed."""
    try:
        return parse_quantity(text).milli_value()
    except QuantityError:
        return 0


@functools.lru_cache(maxsize=4096)
def quantity_units(text: str) -> int:
    """A quantity rounded up to whole units ("1Gi" -> 1073741824, "110" -> 110); 0 when
    malformed."""
    try:
        return parse_quantity(text).int_value()
    except QuantityError:
        return 0
