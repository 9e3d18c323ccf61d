"""``rule:math``: does the completion's final answer equal the gold ``answer``?

Extraction, from the end of the completion (its last ``MAX_SCAN_CHARS`` characters, in time linear
in its length; a completion over ``MAX_COMPLETION_CHARS`` characters is not searched: ``None``):
  * whichever comes last of the last ``\\boxed{...}`` group, GSM8K's ``#### x``, "the answer is x" /
    "Answer: x" and a final ``A: x`` line: an early boxed intermediate value does not beat a later
    "The final answer is 14" (a marker whose answer holds a box is that box's);
  * boxes parted only by separators (commas, "and", spacing, ``$``) or by a short "or" are one
    answer: ``\\boxed{(2,2)}`` and ``\\boxed{(6,2)}`` is ``(2,2), (6,2)``; so ``\\boxed{1}, \\boxed{2}``
    against gold ``2`` is a list against one value (0), not a winning hedge. Prose between two
    boxes (a correction) leaves the last one alone;
  * a sentence after a marker ("Final Answer: The largest $n$ is 34.") is read from its last
    "is" / "=" when a value follows; a sentence left over is undecided (``None``), never 0;
  * no marker: a one-line completion that is a formula is the answer; else the last math span
    (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``; dollar amounts around prose are no span)
    unless a number follows it; else the last number, which is undecided when it is a piece of a
    formula (``\\frac{1+\\sqrt{5}}{2}``, ``x^2``, ``[0,1)``, ``(3, 4)``).

Comparison, cheapest first, all decided in this process except the last step:
  1. the normalized strings are equal (LaTeX wrappers, ``\\text{}``, ``\\left``/``\\right``, spacing,
     ``\\dfrac``, ``$``/currency, units, ``%``, degrees, ``x = 3`` -> ``3``, thousands commas removed);
     an equation or inequality on either side is compared whole (``y=-\\frac12x+\\frac34`` is
     ``2x+4y-3=0``, ``5 \\geq x`` is ``x \\leq 5``, ``-1 < x < 3`` is ``(-1, 3)``);
  2. both sides are plain numbers (integers, decimals, ``a/b``, ``\\frac{a}{b}``, mixed numbers):
     compared exactly as fractions;
  3. anything else goes to math-verify (parse + verify, sympy underneath) in a helper subprocess
     with a hard wall-clock bound; a helper that runs over is killed and replaced. math-verify's own
     unit stripping is off there (it would turn ``7 t`` into ``7``): the units are this module's.

Policies (pinned by tests/rewards/rules/test_math.py and the corpus math_corpus.py):
  * percent (``percent=``): "unit" (default) drops ``%`` like a unit: ``50%`` == ``50``; ``0.5`` is
    *not* ``50%`` (gold ``50`` and gold ``50%`` give the same verdict). "value" reads ``50%`` as
    ``1/2`` (and not ``50``); "either" accepts both readings (math-verify's behaviour).
  * units: a trailing word is dropped as a unit (``18 dollars``, ``5 cm^2``, ``5 \\text{ m}``) only
    when it has three letters or more, is a known two-letter unit (cm, kg, ft, ...) or was written
    in ``\\text{}``: ``3 x``, ``2 n``, ``10 m``, ``8 ab`` are products, not 3, 2, 10, 8. Currency
    and degrees are dropped, not converted; ``5 million`` means 5000000.
  * rounding: numbers compare exactly (``18.01`` != ``18``, ``0.33`` != ``1/3``). The one allowance:
    when one side has no finite decimal form (``1/3``, ``\\sqrt{2}/2``, ``\\pi``), a decimal with at
    least 3 places that is that value rounded or truncated to its places counts as equal
    (``0.333``, ``0.7071``, ``3.1416``).
  * ``1,000``, ``1{,}000`` and MATH's ``1,\\!000`` (groups of three digits) are one thousand;
    ``1, 000`` and ``(1,000)`` are pairs. No thousands group starts with 0: ``0,111`` is the decimal
    0.111; ``3,5`` against ``3.5`` is undecided (decimal comma or a pair), ``1{,}5`` is ``1,5``.
  * lists: a bare comma list (and joined boxes) is a set of solutions, unordered; a parenthesized
    tuple is ordered; ``\\{1,2\\}`` equals ``1, 2``.
  * intervals and inequalities in one variable are the same set either way round
    (``x \\geq 5`` == ``[5, \\infty)``); an open end is not a closed one.
  * choices: ``(C)``, ``\\text{(C)}`` and ``C`` are the same; words compare case-insensitively.
  * ``x = 3`` against ``3`` (and ``z = 2`` against ``x = 2``): the assigned variable is dropped.

Why a subprocess: math-verify's own timeouts use ``signal.alarm``, which raises in threads and is
silently wrong in worker processes; and CPU-bound sympy cannot be interrupted from another thread,
so a thread with a deadline would only abandon the work, not stop it. Here math-verify runs with
its timeouts disabled (``parsing_timeout=None``, ``timeout_seconds=None``, which skips the signal
path) inside a small pool of persistent helper processes; callers wait on the pipe with ``poll``
(works in any thread; POSIX only) and kill the helper on timeout. Obviously explosive inputs
(power towers such as ``10^{10^{10}}``, very long answers) are refused up front with ``None``.
The timeout bounds the comparison itself; a helper's one-time start (~0.5 s per calling process)
and waiting for a free helper (more threads than ``MAX_HELPERS``) come on top.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from .base import Verdict
from .numbers import MAX_ANSWER_CHARS, approximates, numbers_equal, parse_number
from .symbolic import HelperDied, HelperTimeout, _pool, shutdown_helpers

#: longest extracted/gold answer sent to sympy; longer ones are undecided (None)
MAX_SYMBOLIC_CHARS = 1000
#: a numeric exponent above this is refused (sympy would try to build the number)
MAX_EXPONENT = 10_000
#: the answer is looked for in the last this-many characters of a completion only: a final answer ends
#: its solution, and this leaves room for the summary after a long chain of thought
MAX_SCAN_CHARS = 16_384
#: a completion longer than this is not searched for an answer at all (undecided)
MAX_COMPLETION_CHARS = 1_000_000


# ------------------------------------------------------------------------------------ extraction
_ANSWER_IS = re.compile(r"answer\**\s*(?:is|:|=)\**\s*:?", re.IGNORECASE)
#: a one-line completion "12 + 5 = 17" is worked arithmetic ending in its result, not a formula
_ARITHMETIC_CHAIN = re.compile(r"[\d\s+\-*/×÷().,]+(?:=[\d\s+\-*/×÷().,]+)*=\s*-?\d[\d,]*(?:\.\d+)?\s*\.?")
_CALCULATOR = re.compile(r"<<[^<>\n]*>>")  # GSM8K calculator annotations: <<3+4=7>>
# The pieces of one number in running text, for _last_number.
_NUMBER_START = re.compile(r"(?<![\w.])-?\d")
_GROUPED = re.compile(r"-?[1-9]\d{0,2}(?:,\d{3})+")  # 1,234,567 (0,123 is a decimal comma)
_ZERO_COMMA = re.compile(r"-?0,\d+")  # 0,111: a decimal comma
_DECIMALS = re.compile(r"\.\d+")
_MORE_DIGITS = re.compile(r",*\d")  # what may not follow a grouped number: 1,234,5 / 1,2345
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")
_WHITESPACE = re.compile(r"\s")
#: at most this many boxes are joined into one answer
MAX_BOXES = 12
#: what may stand between two boxes of one answer: \boxed{1}, \boxed{2} and \boxed{3}
_BOX_SEPARATORS = re.compile(r"(?:\s|[,;&$]|\\[,;:! ]|\\q?quad|\\\\|\\[()\[\]]|\band\b|\bor\b|\\text\{\s*(?:and|or|,)?\s*\})*")
#: "\\boxed{4} or maybe \\boxed{5}": a short "or" between two boxes offers both (a hedge), not a correction
_HEDGE = re.compile(r"[^.\n]{0,30}\bor\b[^.\n]{0,30}")
#: a plain number offered next to the box: "\\boxed{7} or 8", "3 or \\boxed{4}" (not "$AB=\\frac54$, or $\\boxed{1.25}$",
#: a restatement of the value in another form)
_OR_AFTER = re.compile(r"[\s$]*,?\s*or\s*\$?\s*-?\d+(?:\.\d+)?\s*\$?\s*(?:[.,;!?]|$)")
_OR_BEFORE = re.compile(r"(?<![\w.$\\{}^_])-?\d+(?:\.\d+)?\s*,?\s*or[\s$]*$")
_COPULA = re.compile(r"\s(?:is|are|was|be|equals|=)\s", re.IGNORECASE)
_PROSE_SKIP = re.compile(r"\$[^$]*\$|\\[a-zA-Z]+(?:\s*\{[^{}]*\})?")
_PROSE_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_SPAN_DELIMITER = re.compile(r"\\\$|\$\$|\$|\\\(|\\\)|\\\[|\\\]")
_SPAN_CLOSE = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}
_GLUED_BEFORE = frozenset("{}^_\\/[(|")
_GLUED_AFTER = frozenset("{}^_/![]()|")


def _braced(text: str, start: int) -> int | None:
    """Index just past the brace group opening at ``text[start] == "{"``; None if unclosed.
    Escaped braces (``\\{``) do not count."""
    depth, i, n = 0, start, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _box_at(text: str, at: int, macro: str) -> tuple[str, int] | None:
    """(content, end) of the box whose macro starts at ``text[at]``; None when it never closes."""
    i = at + len(macro)
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        end = _braced(text, i)
        return None if end is None else (text[i + 1 : end - 1], end)
    m = re.match(r"[^\s$]+", text[i:])
    return (m.group(0), i + m.end()) if m else ("", i)


def _last_box_start(text: str, before: int) -> tuple[int, str]:
    best, macro = -1, ""
    for name in ("\\boxed", "\\fbox"):
        at = text.rfind(name, 0, before)
        if at > best:
            best, macro = at, name
    return best, macro


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``); None when there is
    none or it is never closed."""
    at, macro = _last_box_start(text, len(text))
    if at < 0:
        return None
    box = _box_at(text, at, macro)
    return None if box is None else box[0]


def _boxed_group(text: str) -> tuple[int, str] | None:
    """(start, answer) of the last box together with the boxes just before it that only separators
    (commas, "and", "or", spacing, ``$``) part from it: ``\\boxed{(2,2)}`` and ``\\boxed{(6,2)}`` is
    the one answer ``(2,2), (6,2)``. A single box is its own group; identical parts count once.
    None when the last box never closes; ("", ...) content when it is empty."""
    at, macro = _last_box_start(text, len(text))
    box = _box_at(text, at, macro)
    if box is None:
        return None
    parts, first = [box[0].strip()], at
    while len(parts) < MAX_BOXES:
        prev, prev_macro = _last_box_start(text, first)
        if prev < 0:
            break
        prev_box = _box_at(text, prev, prev_macro)
        if prev_box is None or prev_box[1] > first:
            break  # nested in the next box
        between = text[prev_box[1] : first]
        if not _BOX_SEPARATORS.fullmatch(between) and not _HEDGE.fullmatch(between):
            break  # prose between: an earlier, separate answer (a correction)
        parts.insert(0, prev_box[0].strip())
        first = prev
    unique = list(dict.fromkeys(p for p in parts if p))
    if _OR_AFTER.match(text, box[1]) or _OR_BEFORE.search(text[max(0, first - 40) : first]):
        return first, None  # "\\boxed{7} or 8", "3 or \\boxed{4}": a hedge around the box
    return first, (", ".join(unique) if len(unique) > 1 else (unique[0] if unique else ""))


def _after_marker(rest: str) -> str:
    """The answer that follows a marker like "the answer is": to the end of the line, the inside of
    a ``$...$`` span when it starts with one, cut at the end of the sentence. A sentence ("The
    largest $n$ is 34") is read from its last "is" / "=" on."""
    rest = rest.split("\n", 1)[0]
    for _ in range(3):
        rest = rest.strip().strip("*").strip()
        if rest.startswith("$"):
            close = rest.find("$", 2 if rest.startswith("$$") else 1)
            if close > 0:
                group = _last_math_span(rest)  # "$3$ or $4$" is both
                return group[2] if group and group[0] == 0 and group[3] > 1 else rest[: close + 1]
        sentence_end = re.search(r"(?<!\d)\.(?!\d)|\.(?=\s|$)", rest)
        if sentence_end:
            rest = rest[: sentence_end.start()]
        rest = rest.strip()
        if not _is_prose(rest):
            return rest
        copula = None
        for copula in _COPULA.finditer(rest):
            pass
        value = rest[copula.end() :].strip() if copula is not None else ""
        if not re.search(r"[\d$\\]", value) or _is_prose(value):
            return rest  # "yes, because 7 is prime": no value follows the last "is"; stays a sentence
        rest = value
    return rest


def _is_prose(text: str) -> bool:
    """Running words around the answer ("The largest $n$ is 34"): two or more words of two letters
    or more outside ``$...$``, LaTeX commands and ``\\text{}``, next to a digit or math span."""
    bare = _PROSE_SKIP.sub(" ", text)
    return len(_PROSE_WORD.findall(bare)) >= 2 and bool(re.search(r"[\d$\\]", text))


def _grouped_end(text: str, end: int) -> int | None:
    """End of the thousands-grouped number whose groups end at ``end``: past its decimals unless a
    digit follows them (``1,234.5,6`` ends before the dot); None when a digit follows the groups
    (``1,234,5`` and ``1,2345`` are no grouped numbers)."""
    decimals = _DECIMALS.match(text, end)
    if decimals:
        return end if _MORE_DIGITS.match(text, decimals.end()) else decimals.end()
    return None if _MORE_DIGITS.match(text, end) else end


def _last_number(text: str) -> tuple[int, int] | None:
    """(start, end) of the last number in running text: ``1,234.5`` (groups of three), else ``-12``,
    ``3.5``, ``7/8``, ``0,5`` (a decimal comma); not a digit run inside a word or after a dot.

    These are the matches that the single pattern
    ``(?<![\\w.])-?\\d{1,3}(?:,\\d{3})+(?:\\.\\d+)?(?![\\d,]*\\d)|(?<![\\w.])-?\\d+(?:\\.\\d+)?(?:/\\d+)?``
    finds left to right, in linear time: that pattern re-read the rest of a comma-separated list at
    every group boundary it backtracked over and at every list item it started from (cubic time,
    seconds on ``100,101,...,1000``). Here a grouped run is read once: when a digit follows it, no
    grouped number starts anywhere in it, and its items are read as plain numbers.
    """
    last, pos, not_grouped_before = None, 0, -1
    while (start := _NUMBER_START.search(text, pos)) is not None:
        i, end = start.start(), None
        if i >= not_grouped_before:
            grouped = _GROUPED.match(text, i)
            if grouped:
                end = _grouped_end(text, grouped.end())
                if end is None:
                    not_grouped_before = grouped.end()
        if end is None:
            comma = _ZERO_COMMA.match(text, i)
            end = comma.end() if comma else _PLAIN_NUMBER.match(text, i).end()
        last, pos = (i, end), end
    return last


def _in_expression(text: str, start: int, end: int) -> bool:
    """The number at text[start:end] is a piece of a formula (``\\frac{1+\\sqrt5}{2}``, ``x^2``,
    ``[0,1)``), not a value of its own."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return before in _GLUED_BEFORE or after in _GLUED_AFTER


def _last_math_span(text: str) -> tuple[int, int, str, int] | None:
    """(start, end, content, parts) of the last ``$...$`` / ``$$...$$`` / ``\\(...\\)`` / ``\\[...\\]``
    span whose content is math (not prose between two dollar amounts), joined like boxes with the
    spans just before it that only separators or a short "or" part from it (``$x = 3$ or $x = 4$``
    is both, a hedge); linear time."""
    best, opened, parts = None, None, []
    for m in _SPAN_DELIMITER.finditer(text):
        token = m.group(0)
        if token == "\\$":
            continue
        if opened is None:
            if token in ("$", "$$", "\\(", "\\["):
                opened = m
            continue
        if token == _SPAN_CLOSE[opened.group(0)]:
            content = text[opened.end() : m.start()].strip()
            if content and not _is_prose(content) and len(_PROSE_WORD.findall(_PROSE_SKIP.sub(" ", content))) < 2:
                joined = best is not None and len(parts) < MAX_BOXES and (
                    _BOX_SEPARATORS.fullmatch(text, best[1], opened.start()) or _HEDGE.fullmatch(text, best[1], opened.start()))
                parts = parts + [content] if joined else [content]
                best = (best[0] if joined else opened.start(), m.end())
            opened = None
    if best is None:
        return None
    unique = list(dict.fromkeys(parts))
    return best[0], best[1], ", ".join(unique), len(unique)


def _bare_math(text: str) -> bool:
    """The whole completion is one formula (``\\frac{1+\\sqrt{5}}{2}``): one line, no words."""
    return "\n" not in text and len(text) <= MAX_SYMBOLIC_CHARS and not _PROSE_WORD.search(_PROSE_SKIP.sub(" ", text))


def _scanned_part(text: str) -> str:
    """The end of ``text`` that is searched for an answer: all of it up to ``MAX_SCAN_CHARS``, else
    the last ``MAX_SCAN_CHARS`` characters from a word boundary: a word or number cut by the limit
    is left out, not read in part."""
    if len(text) <= MAX_SCAN_CHARS:
        return text
    cut = len(text) - MAX_SCAN_CHARS
    space = _WHITESPACE.search(text, cut - 1)
    return text[max(cut, space.start()) :] if space else text[cut:]


def extract_answer(text: str) -> tuple[str, str] | None:
    """(answer, how it was found) or None. ``how`` is boxed / #### / answer-is / A: / math-span /
    formula / last-number, hedged-boxed (answer "") when a box is offered with "or 8", unclosed-boxed (answer "") when the last box never closes, or
    number-in-formula (answer: the formula's last stretch) when the last number is a piece of an
    expression. Only ``_scanned_part(text)``, the end of the text, is searched.

    Whichever comes last of the boxed group and the markers wins: an early boxed intermediate value
    does not beat a later "The final answer is 5" (a marker followed by a box is the box's)."""
    text = _scanned_part(text)
    candidates: list[tuple[int, str, str]] = []
    boxed_at = -1
    if "\\boxed" in text or "\\fbox" in text:
        group = _boxed_group(text)
        if group is None:
            return ("", "unclosed-boxed")
        boxed_at = group[0]
        candidates.append((group[0], group[1] if group[1] is not None else "", "boxed" if group[1] is not None else "hedged-boxed"))
    at = text.rfind("####")
    if at >= 0 and at > boxed_at:
        candidates.append((at, _after_marker(text[at + 4 :]), "####"))
    last_is = None
    for last_is in _ANSWER_IS.finditer(text, max(0, boxed_at)):
        pass
    if last_is is not None and last_is.start() > boxed_at:
        candidates.append((last_is.start(), _after_marker(text[last_is.end() :]), "answer-is"))
    lines = text.rstrip().rsplit("\n", 1)
    last_line = lines[-1].strip()
    if last_line.startswith("A:"):
        candidates.append((len(text) - len(last_line), _after_marker(last_line[2:]), "A:"))
    candidates = [c for c in candidates if c[1] or c[2] in ("boxed", "hedged-boxed")]
    if candidates:
        _, answer, how = max(candidates, key=lambda c: (c[0], c[2] != "boxed"))
        if how not in ("boxed", "hedged-boxed") and boxed_at >= 0 and not re.search(r"[\d$\\]", answer) \
                and not re.fullmatch(r"\(?[A-Za-z]\)?", answer):
            return next((c[1], c[2]) for c in candidates if c[2] in ("boxed", "hedged-boxed"))  # "... so the answer is above"
        return (answer, how)
    text = _CALCULATOR.sub(" ", text)
    stripped = text.strip()
    if _bare_math(stripped) and not _PLAIN_NUMBER.fullmatch(stripped) and not _ARITHMETIC_CHAIN.fullmatch(stripped):
        return (stripped, "formula")
    span = _last_math_span(text)
    number = _last_number(text[span[1] :] if span else text)
    if number is not None:
        offset = span[1] if span else 0
        start, end = number[0] + offset, number[1] + offset
        if _in_expression(text, start, end):
            return (text[max(0, start - 40) : end + 1].strip(), "number-in-formula")
        return (text[start:end], "last-number")
    if span is not None:
        return (span[2], "math-span")
    return None


# --------------------------------------------------------------------------------- normalization
_TEXT_MACROS = re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"(\\\\)|\\[!,;:> ]|\\q?quad(?![a-zA-Z])|\\displaystyle(?![a-zA-Z])|\\(?:left|right|big|Big|bigl|bigr|Bigl|Bigr)(?![a-zA-Z])|~")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ(?![a-zA-Z])|°|\\degree(?![a-zA-Z])")
_ASSIGNMENT = re.compile(r"(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?\s*(?:=|\\in(?![a-zA-Z]))\s*([^=<>]+)")
_UNIT_WORD = re.compile(r"[a-zA-Z][a-zA-Z.'\-/]*(?:\^\{?[23]\}?)?")
_THOUSANDS = re.compile(r"-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
_MATH_THOUSANDS = re.compile(r"(?<=\d),\\!\s*(?=\d{3}(?!\d))")  # MATH's 32,\!349
_LOGICAL_OR = re.compile(r"\\(?:lor|vee)(?![a-zA-Z])")
_DECIMAL_COMMA = re.compile(r"-?\d+,\d+")
_BRACED_COMMA = re.compile(r"\{,\}(\d{3}(?!\d))?")  # 1{,}000 is 1000; 1{,}5 is a decimal comma (German LaTeX)
_CHAIN = re.compile(r"(.+?)\s*(<|\\leq|\\le|\\lt)\s*([a-zA-Z])\s*(<|\\leq|\\le|\\lt)\s*(.+)")
_RELATION = re.compile(r"=|<|>|\\(?:le|ge|leq|geq|neq|ne|lt|gt|leqslant|geqslant)(?![a-zA-Z])|≤|≥|≠")
_SCALE = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
#: unit abbreviations of two letters dropped even outside \text{} (a one-letter word outside \text{}
#: is a variable: 3 x is not 3; longer words are dropped as units: 18 dollars)
_SHORT_UNITS = frozenset("cm mm km kg mg ft in mi lb oz hr ml mL yd cc dl".split())
PERCENT_POLICIES = ("unit", "value", "either")


def normalize(answer: str, *, percent: str = "unit") -> str:
    """Strip the ways of writing an answer that do not change it (see the module policies)."""
    return _normalize(answer, percent)[1]


def _normalize(answer: str, percent: str = "unit") -> tuple[str, str]:
    """(relation form, answer form) of an answer: the answer form drops a leading ``x =`` too."""
    s = answer.strip().replace("\u2212", "-")
    for _ in range(3):  # wrappers can nest: $\boxed{\text{...}}$
        before = s
        if s.startswith("\\boxed") or s.startswith("\\fbox"):
            inner = last_boxed(s)
            if inner:
                s = inner
        s = s.strip()
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if len(s) > len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s = s[len(left) : -len(right)].strip()
        s = s.rstrip(".").strip()
        if s == before:
            break
    s = _LOGICAL_OR.sub(", ", s)  # 4 \\lor 5 offers two answers: a list
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    has_percent = "%" in s
    s = _BRACED_COMMA.sub(lambda m: m.group(1) or ",", s).replace("\\varnothing", "\\emptyset")
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    s = re.sub(r"[£€¥]", "", s)
    s = _DEGREES.sub("", s)
    s = _MATH_THOUSANDS.sub(",", s)
    s = _SPACING.sub(lambda m: m.group(1) or " ", s)  # a row break \\ is kept
    texted: set[str] = set()

    def text_words(m: re.Match) -> str:
        texted.update(m.group(1).split())
        return " " + m.group(1) + " "

    for _ in range(3):
        s = _TEXT_MACROS.sub(text_words, s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    relation = _drop_trailing_words(s, texted)
    m = _ASSIGNMENT.fullmatch(s)
    if m:
        s = m.group(1).strip()
    s = _drop_trailing_words(s, texted)
    if re.fullmatch(r"\(\s*([A-Za-z])\s*\)", s):  # multiple choice: (C) -> C
        s = s.strip("() ")
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    elif re.fullmatch(r"-?0,\d+", s):  # 0,111: a decimal comma (no thousands group starts with 0)
        s = s.replace(",", ".")
    if has_percent and percent == "value":
        value = parse_number(s)
        if value is not None:
            s = _fraction_text(value[0] / 100)
    return relation, s


def _drop_trailing_words(s: str, texted: set[str] = frozenset()) -> str:
    """``18 dollars`` -> ``18``, ``5 cm^2`` -> ``5``, ``2\\sqrt{2} units`` -> ``2\\sqrt{2}``,
    ``5 million`` -> ``5000000``; only when what precedes the words has no letters of its own.
    A word of one letter (``3 x``, ``2 n``) is a variable unless it was written in ``\\text{}``
    (``texted``), and of two letters unless it is a known unit (``cm``)."""
    tokens = re.sub(r"\s+(?=\^)", "", s).split(" ")  # "cm ^2" (from \mbox{ cm}^2) is one word
    keep = len(tokens)
    while keep > 1 and _is_unit(tokens[keep - 1], texted):
        keep -= 1
    if keep == len(tokens):
        return s
    number = " ".join(tokens[:keep])
    if re.search(r"[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", number)) or _RELATION.search(number):
        return s
    scale = _SCALE.get(tokens[keep].lower())
    if scale is not None and len(number) < 100:
        value = parse_number(number)
        if value is not None:
            return _fraction_text(value[0] * scale)
    return number


def _is_unit(token: str, texted: set[str]) -> bool:
    if not _UNIT_WORD.fullmatch(token) or token in ("i", "e"):
        return False
    letters = re.match(r"[a-zA-Z]+", token).group(0)
    return len(letters) >= 3 or letters in texted or letters in _SHORT_UNITS


def _fraction_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


# --------------------------------------------------------------------------------- input guards
_TOO_BIG = float("inf")
_BIG_OPERATOR_LIMIT = re.compile(r"\\(?:sum|prod|coprod|int|iint|oint|bigcup|bigcap)\s*(?:_\s*(?:\{[^{}]*\}|\S))?\s*$")


def _power_value(expr: str, cap: int, known: dict[str, int | float | None] | None = None) -> int | float | None:
    """Value of a purely numeric exponent (``12``, ``{10^{10}}``, ``2^3^4``) when it is <= cap,
    ``inf`` when it is larger, None when it is not of that shape. Never builds a number above cap.
    ``known`` holds the values already worked out: each ``^`` of a tower ``1^1^...^1`` asks for the
    tower above it, which the first one has evaluated (without it, time cubic in the length)."""
    known = {} if known is None else known
    if expr in known:
        return known[expr]
    key, expr = expr, expr.strip()
    while expr.startswith("{") and _braced(expr, 0) == len(expr):
        expr = expr[1:-1].strip()
    if re.fullmatch(r"\d+", expr):
        value = int(expr) if len(expr) <= 8 and int(expr) <= cap else _TOO_BIG
    elif (m := re.fullmatch(r"(\d+)\s*(?:\^|\*\*)\s*(.+)", expr)) is None:
        value = None
    else:
        value = _tower_value(_power_value(m.group(1), cap, known), _power_value(m.group(2), cap, known), cap)
    known[key] = value
    return value


def _tower_value(base: int | float | None, exponent: int | float | None, cap: int) -> int | float | None:
    """``base ^ exponent`` as _power_value gives it, from their own _power_value results."""
    if base is None or exponent is None:
        return None
    if base in (0, 1):
        return base
    if base is _TOO_BIG or exponent is _TOO_BIG:
        return _TOO_BIG
    value = 1
    for _ in range(int(exponent)):
        value *= int(base)
        if value > cap:
            return _TOO_BIG
    return value


def explosive(expr: str) -> str | None:
    """Why an expression is too risky to hand to sympy at all, or None."""
    known: dict[str, int | float | None] = {}
    for m in re.finditer(r"\^|\*\*", expr):
        if _BIG_OPERATOR_LIMIT.search(expr, 0, m.start()):
            continue  # \sum_{k=1}^{10^9}: an upper limit, not an exponent
        i = m.end()
        while i < len(expr) and expr[i] == " ":
            i += 1
        if i < len(expr) and expr[i] == "{":
            end = _braced(expr, i)
            arg = expr[i : end] if end else expr[i:]
        else:
            token = re.match(r"\d+|\\?[a-zA-Z]+|.", expr[i:])
            arg = token.group(0) if token else ""
            nxt = expr[i + len(arg) :].lstrip()
            if nxt[:1] == "^" or nxt[:2] == "**":  # right-associative tower written without braces
                arg = expr[i:]
        if re.fullmatch(r"[\d\s{}^*]+", arg) and _power_value(arg, MAX_EXPONENT, known) is _TOO_BIG:
            return f"exponent {arg.strip()[:40]!r} is too large to evaluate"
    m = re.search(r"(\d{5,})\s*!", expr)
    if m:
        return f"factorial of {m.group(1)[:40]} is too large to evaluate"
    return None


# ----------------------------------------------------------------------------------------- check
def _words(s: str) -> str | None:
    """Text answers (a name, a direction, a choice letter) compare case-insensitively; short
    letter groups like ``ab`` are left to sympy (they may be products)."""
    return s.casefold() if re.fullmatch(r"[A-Za-z]{3,}(?: [A-Za-z]+)*|[A-Za-z]", s) else None


def check_math(completion: str, *, answer: Any, timeout: float = 2.0, percent: str = "unit") -> Verdict:
    """1.0 if the completion's final answer equals ``answer``, 0.0 if not, None (with the reason)
    when no answer can be found or the comparison cannot finish within ``timeout`` seconds.
    ``percent``: "unit" (``50%`` == ``50``), "value" (``50%`` == ``0.5``) or "either"."""
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if percent not in PERCENT_POLICIES:
        raise ValueError(f"percent must be one of {', '.join(PERCENT_POLICIES)}, got {percent!r}")
    if answer is None or not str(answer).strip():
        return Verdict(None, "no gold answer")
    if len(completion) > MAX_COMPLETION_CHARS:
        return Verdict(None, f"completion too long to search for an answer ({len(completion)} chars > {MAX_COMPLETION_CHARS})")
    found = extract_answer(completion)
    if found is None:
        return Verdict(None, "no final answer found (no \\boxed{}, '####', 'the answer is', 'A:', math span or number)")
    extracted, how = found
    info = {"extracted": extracted}
    if how == "unclosed-boxed":
        return Verdict(None, "the last \\boxed{ is never closed (truncated completion?)", info)
    if how == "hedged-boxed":
        return Verdict(None, "the boxed answer is offered with an alternative ('... or ...'): a hedge", info)
    if how == "number-in-formula":
        return Verdict(None, "no final answer found: the last number is a piece of a formula, not a value of its own", info)
    if len(extracted) > MAX_ANSWER_CHARS:
        return Verdict(None, f"extracted answer too long to compare ({len(extracted)} chars > {MAX_ANSWER_CHARS})", info)
    gold_text = str(answer)
    if percent == "either":
        modes = ("unit", "value") if "%" in gold_text or "%" in extracted else ("unit",)
    else:
        modes = (percent,)
    score, reason = None, None
    for mode in modes:
        score, reason = _compare(gold_text, extracted, mode, timeout, how)
        if score == 1.0:
            break
    return Verdict(score, reason, info)


_MARKERS = ("####", "answer-is", "A:")


def _chain_to_interval(s: str) -> str:
    """``-1 < x \\le 3`` -> ``(-1, 3]``: math-verify reads a chained inequality as no interval."""
    if len(s) > 200 or len(_RELATION.findall(s)) != 2:
        return s
    m = _CHAIN.fullmatch(s)
    if not m or _RELATION.search(m.group(1)) or _RELATION.search(m.group(5)):
        return s
    left = "(" if m.group(2) in ("<", "\\lt") else "["
    right = ")" if m.group(4) in ("<", "\\lt") else "]"
    return f"{left}{m.group(1).strip()}, {m.group(5).strip()}{right}"


def _compare(gold_text: str, pred_text: str, percent: str, timeout: float, how: str) -> tuple[float | None, str | None]:
    gold_relation, gold = _normalize(gold_text, percent)
    pred_relation, pred = _normalize(pred_text, percent)
    if not pred:
        return None, f"extracted answer is empty ({how})"
    if gold.replace(" ", "") == pred.replace(" ", ""):
        return 1.0, None
    if _RELATION.search(gold) or _RELATION.search(pred):
        # an equation or inequality is compared whole: y = -x/2 + 3/4 against 2x + 4y - 3 = 0
        gold, pred = _chain_to_interval(gold_relation), _chain_to_interval(pred_relation)
        if gold.replace(" ", "") == pred.replace(" ", ""):
            return 1.0, None
    gold_words, pred_words = _words(gold), _words(pred)
    if gold_words is not None and pred_words is not None:
        return float(gold_words == pred_words), None
    if _is_prose(pred) or how in _MARKERS and len(_PROSE_WORD.findall(pred)) >= 2 and not re.search(r"[\d\\]", pred):
        return None, f"the extracted answer is a sentence, not a value ({how}): {pred[:80]!r}"
    gold_number, pred_number = parse_number(gold), parse_number(pred)
    if gold_number is not None and pred_number is not None:
        return float(numbers_equal(gold_number, pred_number)), None
    for number, other in ((gold_number, pred), (pred_number, gold)):
        if number is not None and _DECIMAL_COMMA.fullmatch(other.replace(" ", "")) and not _THOUSANDS.fullmatch(other):
            reading = parse_number(other.replace(" ", "").replace(",", "."))
            if reading is not None and numbers_equal(number, reading):
                return None, f"{other!r} is a decimal comma or a list of two numbers: ambiguous"
    for side, text in (("gold answer", gold), ("answer", pred)):
        if len(text) > MAX_SYMBOLIC_CHARS:
            return None, f"{side} too long for symbolic comparison ({len(text)} chars > {MAX_SYMBOLIC_CHARS})"
        why = explosive(text)
        if why:
            return None, f"{side} refused: {why}"
    try:
        equal, reason = _pool().compare(gold, pred, timeout)
    except (OSError, HelperDied, HelperTimeout) as err:
        return None, f"symbolic helper could not start: {err}"
    if equal is None:
        return None, reason
    return (1.0 if equal else 0.0), reason


__all__ = ["approximates", "check_math", "extract_answer", "last_boxed", "normalize", "numbers_equal", "parse_number", "shutdown_helpers"]
