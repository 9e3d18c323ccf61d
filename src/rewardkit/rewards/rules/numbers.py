"""Exact numbers as answers are written: integers, decimals, fractions, ``\\frac``, mixed numbers;
equality with the rounding allowance. Shared by the math rule and its symbolic helper process."""
from __future__ import annotations

import re
from fractions import Fraction

#: longest answer compared at all (plain numbers up to this length are compared exactly)
MAX_ANSWER_CHARS = 4000


# ------------------------------------------------------------------------------- exact numbers
_PLAIN = re.compile(r"(\d+)(?:\.(\d*))?|\.(\d+)")


def _plain(text: str) -> tuple[Fraction, int | None] | None:
    """Unsigned integer or decimal -> (value, decimal places or None for an integer)."""
    m = _PLAIN.fullmatch(text)
    if not m:
        return None
    whole, frac = (m.group(1) or "0"), (m.group(2) if m.group(1) is not None else m.group(3))
    if frac is None:
        return Fraction(int(whole)), None
    return Fraction(int(whole + frac), 10 ** len(frac)) if frac else Fraction(int(whole)), len(frac) or None


def _frac_arg(s: str, i: int) -> tuple[str, int] | None:
    if i >= len(s):
        return None
    if s[i] == "{":
        end = s.find("}", i)
        return (s[i + 1 : end], end + 1) if end > 0 else None
    return s[i], i + 1


def parse_number(text: str) -> tuple[Fraction, int | None] | None:
    """A plain number written any usual way -> (exact value, decimal places if written as a decimal).

    Integers, decimals, ``a/b``, ``\\frac{a}{b}``, ``\\frac ab``, mixed numbers (``2\\frac{1}{2}``,
    ``137 \\frac{1}{2}``), a leading sign. Anything else (powers, roots, symbols) -> None."""
    s = text.replace(" ", "")
    if not s or len(s) > MAX_ANSWER_CHARS:
        return None
    sign = 1
    while s[:1] in ("-", "+"):
        sign, s = (-sign if s[0] == "-" else sign), s[1:]
    if s.startswith("(") and s.endswith(")") and s.count("(") == 1:
        s = s[1:-1]
        if s[:1] == "-":
            sign, s = -sign, s[1:]
    plain = _plain(s)
    if plain is not None:
        return sign * plain[0], plain[1]
    m = re.fullmatch(r"(\d+)/(\d+)", s)
    if m:
        return (sign * Fraction(int(m.group(1)), int(m.group(2))), None) if int(m.group(2)) else None
    at = s.find("\\frac")
    if at < 0 or s.count("\\frac") != 1:
        return None
    whole = Fraction(0)
    if at > 0:
        head = _plain(s[:at])
        if head is None or head[1] is not None:
            return None
        whole = head[0]
    num = _frac_arg(s, at + 5)
    den = _frac_arg(s, num[1]) if num else None
    if not num or not den or den[1] != len(s):
        return None
    n_sign = -1 if num[0].startswith("-") else 1
    n, d = _plain(num[0].lstrip("-")), _plain(den[0])
    if n is None or d is None or d[0] == 0:
        return None
    return sign * (whole + n_sign * n[0] / d[0]), None


def terminates(value: Fraction) -> bool:
    """True when the value has a finite decimal expansion (denominator 2^a 5^b)."""
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def approximates(decimal: Fraction, places: int, exact: Fraction) -> bool:
    """The rounding allowance: ``decimal`` (``places`` >= 3 decimals) is ``exact`` rounded half away
    from zero, or truncated, to that many places."""
    if places < 3:
        return False
    scale = 10**places
    scaled = abs(exact) * scale
    candidates = {int(scaled), int(scaled + Fraction(1, 2))}
    sign = -1 if exact < 0 else 1
    return any(decimal == sign * Fraction(c, scale) for c in candidates)


def numbers_equal(a: tuple[Fraction, int | None], b: tuple[Fraction, int | None]) -> bool:
    if a[0] == b[0]:
        return True
    for (dec, places), (other, _) in ((a, b), (b, a)):
        if places is not None and not terminates(other) and approximates(dec, places, other):
            return True
    return False
