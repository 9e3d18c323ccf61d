"""rule:regex, rule:json, rule:length (text.py) and rule:bleu, rule:chrf, rule:rouge-l (reference.py)."""
from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rewardkit.protocol import MissingColumnError
from rewardkit.rewards.rules import load_rule
from rewardkit.rewards.rules.reference import check_bleu, check_chrf, check_rouge_l
from rewardkit.rewards.rules.text import check_json, check_length, check_regex, extract_json

# ---------------------------------------------------------------- regex


@pytest.mark.parametrize(
    "text, pattern, kwargs, expected",
    [
        ("hello world", r"wor", {}, 1.0),
        ("hello world", r"^world", {}, 0.0),
        ("123", r"\d+", {"fullmatch": True}, 1.0),
        ("123a", r"\d+", {"fullmatch": True}, 0.0),
        ("123a", r"\d+", {}, 1.0),
        ("HELLO", r"hello", {}, 0.0),
        ("HELLO", r"hello", {"ignore_case": True}, 1.0),
        ("café au lait", r"^café\b", {}, 1.0),
        ("日本語", r"\w+", {"fullmatch": True}, 1.0),
        ("line1\nAnswer: 42", r"(?m)^Answer: \d+$", {}, 1.0),
        ("", r"^$", {}, 1.0),
        ("", r"a", {}, 0.0),
    ],
)
def test_regex(text, pattern, kwargs, expected):
    assert check_regex(text, pattern=pattern, **kwargs).score == expected


def test_regex_invalid_pattern_is_undecided():
    v = check_regex("x", pattern="(unclosed")
    assert v.score is None and "invalid regex" in v.reason and "(unclosed" in v.reason
    assert check_regex("x", pattern=None).score is None


def test_regex_catastrophic_backtracking_times_out():
    start = time.perf_counter()
    v = check_regex("a" * 60 + "b", pattern=r"(a|aa)+$", timeout=0.2)
    assert time.perf_counter() - start < 5
    assert v.score is None and "timed out" in v.reason


def test_regex_pattern_as_option_or_column():
    assert load_rule("regex", pattern=r"\d")(["p", "p"], ["a1", "b"]) == [1.0, 0.0]
    assert load_rule("regex")(["p", "p"], ["a1", "b"], pattern=[r"\d", "b"]) == [1.0, 1.0]
    with pytest.raises(MissingColumnError, match="'pattern'"):
        load_rule("regex").score(["p"], ["c"])


# ---------------------------------------------------------------- json


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', {"a": 1}),
        ('  [1, "two"]\n', [1, "two"]),
        ('Sure:\n```json\n{"a": 1}\n```\nDone.', {"a": 1}),
        ('```\n{"b": 2}\n```', {"b": 2}),
        ('```python\nx = 1\n```\n```json\n{"c": 3}\n```', {"c": 3}),
        ('{"名前": "café"}', {"名前": "café"}),
    ],
)
def test_extract_json(text, expected):
    assert extract_json(text) == (expected, None)


@pytest.mark.parametrize("text, error", [("", "empty completion"), ("not json", "not valid JSON"), ('{"a": NaN}', "NaN"), ("```json\n{oops}\n```", "fenced block")])
def test_json_invalid_scores_zero_with_error(text, error):
    v = check_json(text)
    assert v.score == 0.0 and error in v.info["error"]


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}, "required": ["name"]}


def test_json_schema():
    assert check_json('{"name": "Ada", "age": 36}', schema=SCHEMA).score == 1.0
    v = check_json('{"name": "Ada", "age": -1}', schema=SCHEMA)
    assert v.score == 0.0 and "age" in v.info["error"] and "minimum" in v.info["error"]
    v = check_json('{"age": 3}', schema=SCHEMA)
    assert v.score == 0.0 and "'name' is a required property" in v.info["error"]
    assert check_json('{"名前": "café"}', schema={"required": ["名前"]}).score == 1.0
    assert check_json('{"name": "Ada"}', schema=json.dumps(SCHEMA)).score == 1.0  # schema column as JSON text


@pytest.mark.parametrize("schema", [{"type": "nope"}, {"required": "name"}, "{not json", 42])
def test_json_invalid_schema_is_undecided(schema):
    v = check_json('{"name": "Ada"}', schema=schema)
    assert v.score is None and "schema" in v.reason.lower()


def test_json_rule_schema_column_is_optional():
    rule = load_rule("json")
    assert rule(["p", "p"], ['{"a": 1}', "nope"]) == [1.0, 0.0]
    out = rule.score(["p", "p"], ['{"name": "x"}', '{"x": 1}'], schema=[SCHEMA, SCHEMA])
    assert out.scores == [1.0, 0.0] and out.extras["error"][0] is None


# ---------------------------------------------------------------- length


@pytest.mark.parametrize(
    "text, kwargs, expected",
    [
        ("a b c", {"target": 4}, 0.75),  # 1 - |3 - 4| / 4
        ("a b c", {"target": 3}, 1.0),
        ("a b c d e", {"target": 4}, 0.75),
        ("w " * 10, {"target": 4}, 0.0),  # 1 - 6/4 < 0, clipped
        ("", {"target": 4}, 0.0),
        ("héllo", {"target": 5, "unit": "chars"}, 1.0),
        ("w " * 10, {"max_length": 10}, 1.0),
        ("w " * 15, {"max_length": 10}, 0.5),  # linear from 1 at max to 0 at 2x max
        ("w " * 20, {"max_length": 10}, 0.0),
        ("w " * 25, {"max_length": 10}, 0.0),
        ("", {"max_length": 10}, 1.0),
        ("w " * 5, {"reference_length": 10}, math.sqrt(2) / 2),  # cos(pi/4)
        ("w " * 10, {"reference_length": 10}, 0.0),  # cos(pi/2)
        ("w " * 15, {"reference_length": 10}, -math.sqrt(2) / 2),  # cos(3pi/4)
        ("w " * 30, {"reference_length": 10}, -1.0),  # capped at 2x the reference
        ("", {"reference_length": 10}, 1.0),
        ("w " * 30, {"reference_length": 10, "correct": True}, -0.7),  # correct answers are floored
        ("w " * 5, {"reference_length": 10, "correct": True}, math.sqrt(2) / 2),
        ("w " * 5, {"reference_length": 10, "correct": False}, 0.0),  # short but wrong: no bonus
        ("", {"reference_length": 10, "correct": False}, 0.0),
        ("w " * 15, {"reference_length": 10, "correct": False}, -math.sqrt(2) / 2),
        ("w " * 15, {"target": 10, "max_length": 10, "mode": "max"}, 0.5),
    ],
)
def test_length(text, kwargs, expected):
    v = check_length(text, **kwargs)
    assert v.score == pytest.approx(expected, abs=1e-12), v


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({}, "target, max_length or reference_length"),
        ({"target": 3, "max_length": 5}, "target, max_length"),
        ({"target": 0}, "target must be a positive number"),
        ({"max_length": -1}, "max_length must be a positive number"),
        ({"reference_length": float("nan")}, "reference_length"),
        ({"target": "ten"}, "target"),
        ({"target": 3, "mode": "max"}, "'max_length'"),
        ({"target": 3, "mode": "shortest"}, "unknown length mode"),
        ({"target": 3, "unit": "tokens"}, "unit"),
        ({"reference_length": 3, "correct": "yes"}, "correct"),
    ],
)
def test_length_undecided(kwargs, named):
    v = check_length("a b", **kwargs)
    assert v.score is None and named in v.reason


def test_length_rule_options_and_columns():
    assert load_rule("length", max_length=2)(["p", "p"], ["a b", "a b c"]) == [1.0, 0.5]
    out = load_rule("length").score(["p", "p"], ["a b", "a b c d"], reference_length=[4, 4])
    assert out.scores == pytest.approx([math.sqrt(2) / 2, 0.0], abs=1e-12)
    assert out.extras["length"] == [2, 4]
    assert load_rule("length")(["p"], ["a"]) == [None]  # nothing to measure against


# ---------------------------------------------------------------- reference similarity


def test_bleu_hand_computed():
    assert check_bleu("the cat sat on the mat", reference="the cat sat on the mat").score == 1.0
    # precisions 5/6, 3/5, 2/4, 1/3; no brevity penalty -> (1/12) ** (1/4)
    assert check_bleu("the cat sat on a mat", reference="the cat sat on the mat").score == pytest.approx((1 / 12) ** 0.25)
    # two references: matches 4/4, 3/3, 1/2 and 0/1 (exp smoothing -> 1/2) -> (1/4) ** (1/4)
    assert check_bleu("a b c d", reference=["a b x y", "x b c d"]).score == pytest.approx(0.5**0.5)
    # first reference alone: 2/4, 1/3, 0/2 -> 1/4, 0/1 -> 1/4
    assert check_bleu("a b c d", reference=["a b x y"]).score == pytest.approx((0.5 / 3 / 16) ** 0.25)
    # effective order: a two-word completion is scored on uni- and bigrams only, times the brevity penalty exp(1 - 6/2)
    assert check_bleu("the cat", reference="the cat sat on the mat").score == pytest.approx(math.exp(-2))


def test_bleu_tokenizer_option():
    assert check_bleu("日本語のテキスト", reference="日本語のテスト").score == 0.0  # 13a: one token each, no match
    assert 0 < check_bleu("日本語のテキスト", reference="日本語のテスト", tokenize="char").score < 1
    assert check_bleu("a", reference="a", tokenize="no-such").score is None


def test_chrf():
    assert check_chrf("the cat", reference="the cat").score == 1.0
    assert check_chrf("xyz", reference="abc").score == 0.0
    near = check_chrf("the cat sat", reference="the dog sat").score
    assert 0 < near < 1
    assert check_chrf("the cat sat", reference=["the dog sat", "the cat sat"]).score == 1.0  # best reference
    assert check_chrf("the cat sat", reference="the dog sat", word_order=2).score > near  # chrF++ also counts the matching words
    # character n-grams (spaces removed), averaged over the orders the completion has, then F-beta with beta = 2:
    # "abc" vs "abd": P = R = (2/3 + 1/2 + 0) / 3 = 7/18
    assert check_chrf("abc", reference="abd").score == pytest.approx(7 / 18)
    # "abc" vs "abcd": P = 1, R = (3/4 + 2/3 + 1/2) / 3 = 23/36 -> F2 = 5PR / (4P + R) = 115/167
    assert check_chrf("abc", reference="abcd").score == pytest.approx(115 / 167)


def test_rouge_l_hand_computed():
    # LCS "the cat sat on mat" = 5 of 6 tokens each way -> F1 = 5/6
    assert check_rouge_l("the cat sat on a mat", reference="the cat sat on the mat").score == pytest.approx(5 / 6)
    # LCS "a c" = 2; P = 2/3, R = 2/4 -> F1 = 4/7
    assert check_rouge_l("a b c", reference="a x c y").score == pytest.approx(4 / 7)
    assert check_rouge_l("a b c", reference=["x y z", "a x c y"]).score == pytest.approx(4 / 7)  # best reference
    assert check_rouge_l("The Cat!", reference="the cat").score == 1.0


def test_rouge_l_unicode_and_stemming():
    assert check_rouge_l("café au lait", reference="Café au lait!").score == 1.0
    assert check_rouge_l("café", reference="cafe").score == 0.0  # "é" is a letter, not a separator
    assert check_rouge_l("我爱北京", reference="我爱上海").score == pytest.approx(0.5)  # one token per CJK character
    assert check_rouge_l("running dogs", reference="runs dog").score == 0.0
    assert check_rouge_l("running dogs", reference="runs dog", stem=True).score == 1.0


@pytest.mark.parametrize("check", [check_bleu, check_chrf, check_rouge_l])
def test_reference_edge_cases(check):
    assert check("", reference="the cat").score == 0.0
    assert check("   ", reference=["the cat", "a dog"]).score == 0.0
    for empty in (None, "", "  ", [], ["", " "]):
        v = check("the cat", reference=empty)
        assert v.score is None and "reference" in v.reason, (check.__name__, empty)
    for wrong in (42, {"the cat": 1}, b"the cat", ["the cat", 3]):
        v = check("the cat", reference=wrong)
        assert v.score is None and "string" in v.reason, (check.__name__, wrong)
    assert check("the cat", reference=("the cat",)).score == 1.0
    assert check("the cat", reference=["", "the cat"]).score == 1.0  # empty references are dropped


def test_rouge_l_reference_without_words_is_undecided():
    v = check_rouge_l("the cat", reference="!!! ...")
    assert v.score is None and "no words" in v.reason


@pytest.mark.parametrize("name", ["bleu", "chrf", "rouge-l"])
def test_missing_reference_column_names_it(name):
    with pytest.raises(MissingColumnError, match="'reference'"):
        load_rule(name).score(["p"], ["c"])


# ---------------------------------------------------------------- every rule: threads and processes

TEXTS = ['{"name": "Ada"}', "the cat sat on a mat", "", "Answer: 42", "café au lait", "w " * 15, "```json\n[1]\n```", "我爱北京"]
REFS = ["the cat sat on the mat", ["a cat", "the cat sat"], "x", "", "Café au lait", "the the the", "[1]", "我爱上海"]

RULE_COLUMNS = {
    "regex": {"pattern": [r"\d+", "cat", "^$", "(", r"\bau\b", "w", r"\[", r"\w+"]},
    "json": {"schema": [SCHEMA, None, None, None, {"type": "nope"}, None, {"type": "array"}, None]},
    "length": {"target": [3, 6, None, None, 3, 10, None, None], "max_length": [None, None, 5, None, None, None, 2, None], "reference_length": [None, None, None, 4, None, None, None, 1]},
    "bleu": {"reference": REFS},
    "chrf": {"reference": REFS},
    "rouge-l": {"reference": REFS},
}


@pytest.mark.parametrize("name", sorted(RULE_COLUMNS))
def test_rule_thread_and_process_safe(name):
    columns = RULE_COLUMNS[name]
    prompts = ["p"] * len(TEXTS)
    sequential = load_rule(name).score(prompts, TEXTS, **columns)
    assert len(set(map(str, sequential.scores))) > 2, sequential  # the batch is not degenerate
    rule = load_rule(name)

    def one(i):
        return rule.score([prompts[i]], [TEXTS[i]], **{k: [v[i]] for k, v in columns.items()})

    with ThreadPoolExecutor(max_workers=8) as pool:
        singles = list(pool.map(one, list(range(len(TEXTS))) * 3))
        batches = list(pool.map(lambda _: rule.score(prompts, TEXTS, **columns), range(4)))
    assert [s.scores[0] for s in singles] == sequential.scores * 3
    assert all(b == sequential for b in batches)
    pooled = load_rule(name, workers=2, chunk_size=3).score(prompts, TEXTS, **columns)
    assert pooled == sequential
