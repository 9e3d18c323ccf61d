"""Verifiable instruction constraints (IFEval-style): does the completion obey "at most 50 words",
"use exactly 3 bullet points", "end with 'Hope this helps!'" ...? Rewards instruction following
without a judge, in the spirit of "Instruction-Following Evaluation for Large Language Models"
(IFEval); the checks here are rewardkit's own.

A constraint is a dict with a ``type`` and that type's fields; the ``constraint`` column holds one
dict, a list of dicts (all must hold) or the same as a JSON string. Counting fields: ``count``
(exact), ``min_count`` and/or ``max_count`` (bounds).

    type            fields                                   holds when
    max_words       limit                                    words <= limit
    min_words       limit                                    words >= limit
    max_sentences   limit                                    sentences <= limit
    min_sentences   limit                                    sentences >= limit
    paragraphs      count | min_count | max_count            paragraphs (split by blank lines or ***)
    keyword         keyword (str or list), [count|min_count|max_count]  each keyword appears (default: at least once)
    forbidden_words words (str or list)                      none of them appears
    lowercase       -                                        has a cased letter and no uppercase one
    uppercase       -                                        has a cased letter and no lowercase one
    json            [keys]                                   the text (or a ```json block) is JSON; an object with these keys
    bullets         count | min_count | max_count            markdown bullet lines ("- x" or "* x")
    numbered_list   count | min_count | max_count            numbered lines ("1. x" or "1) x")
    start_phrase    phrase, [case_sensitive=true]            the text starts with the phrase
    end_phrase      phrase, [case_sensitive=true]            the text ends with the phrase
    title           -                                        a title in <<double angular brackets>>
    placeholders    count | min_count | max_count            placeholders like [address]
    postscript      [marker="P.S."]                          a line starts with the marker, followed by text
    no_commas       -                                        no comma (",", fullwidth "，", small "﹐")
    quotation       -                                        the whole text is wrapped in double quotes
    highlights      count | min_count | max_count            highlighted spans *like this* (or **this**)

Keywords and forbidden words match case-insensitively as whole words (not inside longer words).
Words are whitespace-separated tokens containing a letter or digit; sentences end at . ! ? (or the
CJK 。！？) followed by space, or at a line break.
"""
from __future__ import annotations

import json
import numbers
import re
from typing import Any, Callable

from .base import Verdict
from .text import extract_json


class _BadConstraint(ValueError):
    """The constraint itself is malformed (missing or ill-typed field): the sample is undecided."""


# ------------------------------------------------------------------ fields


def _field(c: dict, name: str, kind: str, *, default: Any = ...) -> Any:
    """Field ``name`` of constraint ``c``, checked against ``kind`` ('int', 'str', 'strs', 'bool')."""
    if name not in c or c[name] is None:
        if default is not ...:
            return default
        raise _BadConstraint(f"constraint {c.get('type')!r} needs the field {name!r}")
    value = c[name]
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise _BadConstraint(f"field {name!r} of constraint {c.get('type')!r} must be a non-negative integer, got {value!r}")
        return int(value)
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise _BadConstraint(f"field {name!r} of constraint {c.get('type')!r} must be a non-empty string, got {value!r}")
        return value
    if kind == "strs":
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, (list, tuple)) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise _BadConstraint(f"field {name!r} of constraint {c.get('type')!r} must be a non-empty string or list of non-empty strings, got {value!r}")
        return list(values)
    if kind == "bool":
        if not isinstance(value, bool):
            raise _BadConstraint(f"field {name!r} of constraint {c.get('type')!r} must be true or false, got {value!r}")
        return value
    raise AssertionError(kind)


def _count_ok(c: dict, found: int, what: str, *, default_min: int | None = None) -> tuple[bool, str]:
    """Compare ``found`` with the constraint's ``count`` / ``min_count`` / ``max_count``."""
    exact = _field(c, "count", "int", default=None)
    lo = _field(c, "min_count", "int", default=None)
    hi = _field(c, "max_count", "int", default=None)
    if exact is None and lo is None and hi is None:
        if default_min is None:
            raise _BadConstraint(f"constraint {c.get('type')!r} needs the field 'count' (or 'min_count' / 'max_count')")
        lo = default_min
    wants = []
    ok = True
    if exact is not None:
        ok &= found == exact
        wants.append(f"exactly {exact}")
    if lo is not None:
        ok &= found >= lo
        wants.append(f"at least {lo}")
    if hi is not None:
        ok &= found <= hi
        wants.append(f"at most {hi}")
    return ok, f"found {found} {what}, expected {' and '.join(wants)}"


# ------------------------------------------------------------------ text units

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|(?<=[。！？])|\n")
_PARAGRAPH_SPLIT = re.compile(r"\n[ \t]*\n|^[ \t]*\*{3,}[ \t]*$", re.MULTILINE)
_RULE_LINE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$")  # "***", "- - -": thematic breaks, not bullets
_BULLET = re.compile(r"^[ \t]*[-*][ \t]+\S")
_NUMBERED = re.compile(r"^[ \t]*\d+[.)][ \t]+\S")
_TITLE = re.compile(r"<<([^<>\n]+)>>")
_PLACEHOLDER = re.compile(r"\[([^\[\]\n]+)\](?!\()")  # "[name]" but not a markdown link "[text](url)"
_HIGHLIGHT = re.compile(r"(?<![*\w])(\*{1,2})(?![\s*])([^*\n]+?)(?<![\s*])\1(?![*\w])")
_COMMAS = (",", "，", "﹐")


def _has_alnum(s: str) -> bool:
    return any(ch.isalnum() for ch in s)


def words(text: str) -> list[str]:
    return [t for t in text.split() if _has_alnum(t)]


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_SPLIT.split(text) if _has_alnum(s)]


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in _PARAGRAPH_SPLIT.split(text) if p.strip()]


def _bullet_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if _BULLET.match(ln) and not _RULE_LINE.match(ln)]


def _whole_word(term: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(term.strip())}(?!\w)", re.IGNORECASE)


# ------------------------------------------------------------------ checks: (text, constraint) -> (holds, detail)


def _max_words(text: str, c: dict) -> tuple[bool, str]:
    limit, n = _field(c, "limit", "int"), len(words(text))
    return n <= limit, f"{n} words, limit {limit}"


def _min_words(text: str, c: dict) -> tuple[bool, str]:
    limit, n = _field(c, "limit", "int"), len(words(text))
    return n >= limit, f"{n} words, minimum {limit}"


def _max_sentences(text: str, c: dict) -> tuple[bool, str]:
    limit, n = _field(c, "limit", "int"), len(sentences(text))
    return n <= limit, f"{n} sentences, limit {limit}"


def _min_sentences(text: str, c: dict) -> tuple[bool, str]:
    limit, n = _field(c, "limit", "int"), len(sentences(text))
    return n >= limit, f"{n} sentences, minimum {limit}"


def _paragraphs(text: str, c: dict) -> tuple[bool, str]:
    return _count_ok(c, len(paragraphs(text)), "paragraphs")


def _keyword(text: str, c: dict) -> tuple[bool, str]:
    details, ok = [], True
    for kw in _field(c, "keyword", "strs"):
        holds, detail = _count_ok(c, len(_whole_word(kw).findall(text)), f"occurrences of {kw!r}", default_min=1)
        ok &= holds
        if not holds:
            details.append(detail)
    return ok, "; ".join(details)


def _forbidden_words(text: str, c: dict) -> tuple[bool, str]:
    found = [w for w in _field(c, "words", "strs") if _whole_word(w).search(text)]
    return not found, f"contains forbidden {found}"


def _lowercase(text: str, c: dict) -> tuple[bool, str]:
    if not any(ch.isupper() or ch.islower() for ch in text):
        return False, "no letters"
    upper = sorted({ch for ch in text if ch.isupper() or ch.istitle()})
    return not upper, f"uppercase letters {''.join(upper[:10])!r}"


def _uppercase(text: str, c: dict) -> tuple[bool, str]:
    if not any(ch.isupper() or ch.islower() for ch in text):
        return False, "no letters"
    lower = sorted({ch for ch in text if ch.islower()})
    return not lower, f"lowercase letters {''.join(lower[:10])!r}"


def _json(text: str, c: dict) -> tuple[bool, str]:
    keys = _field(c, "keys", "strs", default=[])
    value, error = extract_json(text)
    if error is not None:
        return False, error
    if not keys:
        return True, ""
    if not isinstance(value, dict):
        return False, f"expected a JSON object with keys {keys}, got {type(value).__name__}"
    missing = [k for k in keys if k not in value]
    return not missing, f"missing keys {missing}"


def _bullets(text: str, c: dict) -> tuple[bool, str]:
    return _count_ok(c, len(_bullet_lines(text)), "bullet points")


def _numbered_list(text: str, c: dict) -> tuple[bool, str]:
    return _count_ok(c, sum(1 for ln in text.splitlines() if _NUMBERED.match(ln)), "numbered items")


def _phrase_args(c: dict) -> tuple[str, bool]:
    return _field(c, "phrase", "str").strip(), _field(c, "case_sensitive", "bool", default=True)


def _start_phrase(text: str, c: dict) -> tuple[bool, str]:
    phrase, case = _phrase_args(c)
    head = text.lstrip()
    ok = head.startswith(phrase) if case else head.lower().startswith(phrase.lower())
    return ok, f"does not start with {phrase!r}"


def _end_phrase(text: str, c: dict) -> tuple[bool, str]:
    phrase, case = _phrase_args(c)
    tail = text.rstrip()
    ok = tail.endswith(phrase) if case else tail.lower().endswith(phrase.lower())
    return ok, f"does not end with {phrase!r}"


def _title(text: str, c: dict) -> tuple[bool, str]:
    return any(t.strip() for t in _TITLE.findall(text)), "no title in <<double angular brackets>>"


def _placeholders(text: str, c: dict) -> tuple[bool, str]:
    found = sum(1 for p in _PLACEHOLDER.findall(text) if p.strip())
    return _count_ok(c, found, "placeholders [like this]")


def _postscript(text: str, c: dict) -> tuple[bool, str]:
    marker = _field(c, "marker", "str", default="P.S.").strip()
    pattern = re.compile(rf"^[ \t]*(?:[*_]{{1,2}})?{re.escape(marker)}[ \t]*\S", re.MULTILINE | re.IGNORECASE)
    return pattern.search(text) is not None, f"no line starting with {marker!r}"


def _no_commas(text: str, c: dict) -> tuple[bool, str]:
    n = sum(text.count(comma) for comma in _COMMAS)
    return n == 0, f"{n} commas"


def _quotation(text: str, c: dict) -> tuple[bool, str]:
    s = text.strip()
    ok = len(s) >= 2 and ((s[0] == s[-1] == '"') or (s[0] == "“" and s[-1] == "”"))
    return ok, "not wrapped in double quotes"


def _highlights(text: str, c: dict) -> tuple[bool, str]:
    return _count_ok(c, len(_HIGHLIGHT.findall(text)), "highlighted sections")


_CHECKS: dict[str, Callable[[str, dict], tuple[bool, str]]] = {
    "max_words": _max_words, "min_words": _min_words,
    "max_sentences": _max_sentences, "min_sentences": _min_sentences,
    "paragraphs": _paragraphs,
    "keyword": _keyword, "forbidden_words": _forbidden_words,
    "lowercase": _lowercase, "uppercase": _uppercase,
    "json": _json,
    "bullets": _bullets, "numbered_list": _numbered_list,
    "start_phrase": _start_phrase, "end_phrase": _end_phrase,
    "title": _title, "placeholders": _placeholders, "postscript": _postscript,
    "no_commas": _no_commas, "quotation": _quotation, "highlights": _highlights,
}

#: every constraint type this rule understands
CONSTRAINT_TYPES: tuple[str, ...] = tuple(_CHECKS)


def _as_constraints(constraint: Any) -> list[dict]:
    if isinstance(constraint, str):
        try:
            constraint = json.loads(constraint)
        except json.JSONDecodeError as err:
            raise _BadConstraint(f"the constraint column holds a string that is not JSON: {err}") from None
    items = [constraint] if isinstance(constraint, dict) else constraint
    if not isinstance(items, (list, tuple)) or not items:
        raise _BadConstraint(f"constraint must be a dict with a 'type' or a non-empty list of them, got {constraint!r}")
    for item in items:
        if not isinstance(item, dict):
            raise _BadConstraint(f"each constraint must be a dict with a 'type', got {item!r}")
        if not isinstance(item.get("type"), str):
            raise _BadConstraint(f"constraint {item!r} needs the field 'type'")
        if item["type"] not in _CHECKS:
            raise _BadConstraint(f"unknown constraint type {item['type']!r} (known: {', '.join(CONSTRAINT_TYPES)})")
    return list(items)


def check_constraints(completion: str, *, constraint: Any) -> Verdict:
    """1.0 when the completion satisfies every constraint, else 0.0.

    ``info["failed"]`` lists the failed constraint types and ``info["fraction"]`` the share that
    hold (a denser signal for lists of constraints); the reason says what was wrong. A malformed
    constraint (unknown type, missing field) leaves the sample undecided (``None``): that is a data
    error, not a failing completion.
    """
    try:
        items = _as_constraints(constraint)
        results = [(item["type"], *_CHECKS[item["type"]](completion, item)) for item in items]
    except _BadConstraint as err:
        return Verdict(None, str(err))
    failed = [(kind, detail) for kind, holds, detail in results if not holds]
    info = {"failed": [kind for kind, _ in failed], "fraction": 1.0 - len(failed) / len(results)}
    if failed:
        return Verdict(0.0, "; ".join(f"{kind}: {detail}" for kind, detail in failed), info)
    return Verdict(1.0, None, info)
