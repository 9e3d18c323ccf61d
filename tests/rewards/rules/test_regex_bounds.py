"""Bounded time on adversarial text for the rules that run regular expressions in the caller's process:
rule:math's answer extraction (outside its symbolic timeout) and the ``pattern`` / ``patternProperties``
regexes of rule:json's schema. Each class of input took seconds to minutes before it was bounded;
the bounds asserted here are generous (the bounded code takes milliseconds)."""
from __future__ import annotations

import random
import re
import time

import pytest

from rewardkit.rewards.rules import math as math_rule
from rewardkit.rewards.rules.math import check_math, explosive, extract_answer
from rewardkit.rewards.rules.text import check_json


def _seconds(call, repeats: int = 1) -> float:
    """Fastest of ``repeats`` runs of ``call()``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _grouped_then_digit(n: int) -> str:
    """``1,234,234,...,2345``: a thousands-grouped run that a digit spoils at its very end."""
    return "1" + ",234" * ((n - 2) // 4) + "5"


# ------------------------------------------------------------------------ rule:math, extraction
# (text, the number extracted, as the former single regex found it); the former regex took the
# seconds noted on a 2-core machine (cubic time: 8x for twice the length)
MATH_ATTACKS = {
    "grouped-then-digit-4k": (_grouped_then_digit(4096), "2345"),  # 4.7 s
    "grouped-then-digit-8k": (_grouped_then_digit(8192), "2345"),  # 32 s
    "natural-list-100-1000": (",".join(str(i) for i in range(100, 1001)), "1000"),  # 2.8 s
    "list-then-4-digits": (",".join(str(100 + i % 900) for i in range(1000)) + ",1000", "1000"),  # 3.7 s
    "list-in-prose": ("We count them: " + ",".join(str(i) for i in range(100, 1001)) + " in all.", "1000"),  # 2.8 s
    "negative-list": ("-" + ",".join(str(i) for i in range(100, 1001)), "1000"),  # 2.6 s
    "list-then-short-group": (",".join(str(i) for i in range(100, 1000)) + ",12", "12"),  # 2.8 s
}


@pytest.mark.parametrize("text, number", MATH_ATTACKS.values(), ids=MATH_ATTACKS.keys())
def test_math_extraction_of_a_long_number_list_is_fast(text, number):
    seconds = _seconds(lambda: extract_answer(text))
    assert seconds < 0.5, f"extraction took {seconds:.2f}s on {len(text)} chars"
    assert extract_answer(text) == (number, "last-number")
    start = time.perf_counter()
    verdict = check_math(text, answer=number)  # the string fast path: no symbolic helper involved
    assert time.perf_counter() - start < 0.5
    assert verdict.score == 1.0


def test_math_extraction_time_is_linear():
    """16 KB (all of it scanned) takes at most ~8x the time of 2 KB; generous factors per doubling
    and overall (the former regex was cubic: 8x per doubling)."""
    times = {2048: _seconds(lambda: extract_answer(_grouped_then_digit(2048)), repeats=3)}
    for n in (4096, 8192, 16384):  # stops at the first doubling that is too slow (the former: 4 KB)
        times[n] = _seconds(lambda n=n: extract_answer(_grouped_then_digit(n)), repeats=3)
        assert times[n] < 4 * times[n // 2] + 0.002, times
    assert 16384 <= math_rule.MAX_SCAN_CHARS  # so the 16 KB text is read in full
    assert times[16384] < 20 * times[2048] + 0.005, times


# The former regex, kept here as the specification of which number is "the last number".
_FORMER_NUMBER_IN_TEXT = re.compile(  # with 0,111 a decimal comma: no thousands group starts with 0
    r"(?<![\w.])-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?(?![\d,]*\d)|(?<![\w.])-?0,\d+|(?<![\w.])-?\d+(?:\.\d+)?(?:/\d+)?"
)


def _former_last_number(text: str) -> str | None:
    last = None
    for last in _FORMER_NUMBER_IN_TEXT.finditer(text):
        pass
    return None if last is None else last.group(0)


def test_math_last_number_is_the_former_regexs_on_short_text():
    """Not an attack: the linear scan must find exactly what the single regex finds. (The scanner
    itself is compared: extract_answer now also reads a one-line formula whole and refuses a number
    glued to a formula, on purpose.)"""
    rng = random.Random(0)
    for _ in range(20_000):
        pieces = []
        for _ in range(rng.randint(1, 5)):
            pieces.append(rng.choice(["-", "", ""]) + str(rng.randint(0, 999)))
            pieces += [rng.choice([",", ",,", ""]) + rng.choice(["234", "23", "2345", ""]) for _ in range(rng.randint(0, 3))]
            pieces.append(rng.choice(["", ".", ".5", "/7", ",", " ", "a", ". ", "٣"]))
        text = "".join(pieces)
        found = math_rule._last_number(text)
        assert (text[found[0] : found[1]] if found else None) == _former_last_number(text), text


def test_math_power_tower_guard_is_fast():
    """``1^{1^{...}}`` (1,000 characters, under the symbolic length limit) is not explosive; telling so
    evaluated every tower above every ``^`` again (0.9 s in the caller's process before)."""
    tower = "{1^" * 249 + "1" + "}" * 249
    seconds = _seconds(lambda: explosive(tower))
    assert seconds < 0.25, f"explosive() took {seconds:.2f}s"
    assert explosive(tower) is None
    assert explosive("1^" * 499 + "1") is None
    assert explosive("2^" * 10 + "2") is not None  # the guard itself is unchanged


def test_math_only_the_end_of_a_long_completion_is_searched():
    limit = math_rule.MAX_SCAN_CHARS
    assert extract_answer("word " * 30_000 + "so the answer is 5.") == ("5", "answer-is")
    # the answer is looked for in the last MAX_SCAN_CHARS characters only
    assert extract_answer(r"\boxed{3} " + "word " * (limit // 5 + 10) + "7") == ("7", "last-number")
    # a number that the limit cuts is left out, not read in part
    cut_number = "9" * 100 + " " + "w" * (limit - 51)
    assert extract_answer(cut_number) is None
    # past the hard limit, nothing is read at all
    huge = "1 " * (math_rule.MAX_COMPLETION_CHARS // 2 + 1)
    start = time.perf_counter()
    verdict = check_math(huge, answer="1")
    assert time.perf_counter() - start < 0.5
    assert verdict.score is None and "too long" in verdict.reason


# --------------------------------------------------------------------- rule:json, schema regexes
def test_json_schema_pattern_nested_quantifier_is_fast():
    """The issue's example: 5.5 s in `re`; the regex engine decides it at once (no match)."""
    seconds = _seconds(lambda: check_json('"' + "a" * 26 + '!"', schema={"type": "string", "pattern": "^(a+)+$"}))
    assert seconds < 1.0
    verdict = check_json('"' + "a" * 26 + '!"', schema={"type": "string", "pattern": "^(a+)+$"})
    assert verdict.score == 0.0 and "does not match" in verdict.info["error"]
    assert check_json('"' + "a" * 26 + '"', schema={"pattern": "^(a+)+$"}).score == 1.0


# schemas whose regex backtracks exponentially on the completion's strings (~5 s in `re` at 26 chars)
SLOW = "^(a|a)*$"
ATTACK = "a" * 26 + "!"
JSON_ATTACKS = {
    "pattern": ({"type": "string", "pattern": SLOW}, f'"{ATTACK}"'),
    "patternProperties": ({"patternProperties": {SLOW: {"type": "string"}}}, f'{{"{ATTACK}": 1}}'),
    "additionalProperties": ({"patternProperties": {SLOW: {}}, "additionalProperties": False}, f'{{"{ATTACK}": 1}}'),
    "propertyNames": ({"propertyNames": {"pattern": SLOW}}, f'{{"{ATTACK}": 1}}'),
    "recursive-ref": (
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "properties": {"child": {"$ref": "#"}}, "additionalProperties": {"pattern": SLOW}},
        f'{{"child": {{"child": {{"x": "{ATTACK}"}}}}}}',
    ),
    "draft-07": ({"$schema": "http://json-schema.org/draft-07/schema#", "items": {"pattern": SLOW}}, f'["{ATTACK}"]'),
    "many-strings": ({"items": {"pattern": SLOW}}, "[" + ", ".join([f'"{ATTACK}"'] * 20) + "]"),  # one deadline for all
}


@pytest.mark.parametrize("schema, completion", JSON_ATTACKS.values(), ids=JSON_ATTACKS.keys())
def test_json_schema_regex_times_out_undecided(schema, completion):
    start = time.perf_counter()
    verdict = check_json(completion, schema=schema, timeout=0.2)
    seconds = time.perf_counter() - start
    assert seconds < 1.0, f"check_json took {seconds:.2f}s"
    assert verdict.score is None and "timed out" in verdict.reason, verdict


@pytest.mark.parametrize(
    "schema",
    [
        {"patternProperties": {"^a": {}}, "unevaluatedProperties": False},
        {"$defs": {"s": {"$schema": "https://json-schema.org/draft/2020-12/schema", "pattern": SLOW}}, "$ref": "#/$defs/s"},
        {"pattern": SLOW, "$ref": "https://json-schema.org/draft/2020-12/schema"},
    ],
    ids=["unevaluatedProperties", "nested-$schema", "metaschema-$ref"],
)
def test_json_schema_regex_out_of_reach_is_undecided(schema):
    """Where jsonschema would run a regex through `re` itself, the check refuses instead of guessing."""
    start = time.perf_counter()
    verdict = check_json(f'"{ATTACK}"', schema=schema)
    assert time.perf_counter() - start < 1.0
    assert verdict.score is None and "unsupported JSON Schema" in verdict.reason, verdict


def test_json_schema_regexes_still_decide_ordinary_input():
    """The bounded keywords give jsonschema's verdicts on ordinary input; a bad timeout is undecided."""
    schema = {"patternProperties": {"^x": {"type": "integer"}}, "additionalProperties": False, "properties": {"id": {"pattern": r"^\d+$"}}}
    assert check_json('{"x1": 1, "id": "42"}', schema=schema).score == 1.0
    verdict = check_json('{"x1": 1, "y": 2}', schema=schema)
    assert verdict.score == 0.0 and "'y' does not match any of the regexes: '^x'" in verdict.info["error"]
    assert check_json('{"x1": "one"}', schema=schema).score == 0.0
    assert check_json('{"id": "4a"}', schema=schema).score == 0.0
    assert check_json('{"a": 1}', schema={"properties": {"a": {}}, "unevaluatedProperties": False}).score == 1.0
    assert check_json('"x"', schema={"pattern": "x"}, timeout=0).score is None
