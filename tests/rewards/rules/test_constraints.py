"""rule:constraints - IFEval-style verifiable instruction constraints."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from rewardkit.data.synth import generate
from rewardkit.protocol import MissingColumnError
from rewardkit.rewards.rules import load_rule
from rewardkit.rewards.rules.constraints import CONSTRAINT_TYPES, check_constraints, paragraphs, sentences, words

# (constraint, satisfying text, violating text) - at least one pair for every type
CASES = [
    ({"type": "max_words", "limit": 3}, "one two three", "one two three four"),
    ({"type": "max_words", "limit": 2}, "one — two", "one - two three"),  # a lone dash is not a word
    ({"type": "min_words", "limit": 3}, "a b c", "a b"),
    ({"type": "max_sentences", "limit": 3}, "Hi there. How are you? Fine!", "One. Two. Three. Four."),
    ({"type": "max_sentences", "limit": 1}, "It costs 3.5 dollars.", "It costs 3. Then 5."),
    ({"type": "min_sentences", "limit": 3}, "Hi there. How are you? Fine!", "Hi there. How are you?"),
    ({"type": "paragraphs", "count": 3}, "first\n\nsecond\n  \nthird", "first\nsecond\n\nthird"),
    ({"type": "paragraphs", "count": 2}, "first part\n***\nsecond part", "first part *** second part"),
    ({"type": "keyword", "keyword": "simple"}, "A Simple idea.", "The simplest idea."),
    ({"type": "keyword", "keyword": "cat", "count": 2}, "cat dog cat", "cat dog cat cat"),
    ({"type": "keyword", "keyword": "cat", "min_count": 2}, "cat dog CAT cat", "cat dog"),
    ({"type": "keyword", "keyword": ["cat", "dog"]}, "a cat and a dog", "a cat and a cow"),
    ({"type": "keyword", "keyword": "C++"}, "I like C++ a lot", "I like C a lot"),
    ({"type": "forbidden_words", "words": ["bad", "awful"]}, "A good badge.", "Bad idea."),
    ({"type": "lowercase"}, "hello world, ünïcode.", "Hello world."),
    ({"type": "lowercase"}, "ok", "123"),  # no letters at all does not count as lowercase
    ({"type": "uppercase"}, "HELLO, STRASSE!", "HELLO STRAßE"),  # ß is a lowercase letter
    ({"type": "json", "keys": ["topic", "summary"]}, '{"topic": "x", "summary": "y", "extra": 1}', '{"topic": "x"}'),
    ({"type": "json", "keys": ["a"]}, 'Here:\n```json\n{"a": 1}\n```', "a: 1"),
    ({"type": "json"}, "[1, 2]", "[1, 2"),
    ({"type": "json", "keys": ["a"]}, '{"a": null}', '["a"]'),
    ({"type": "bullets", "count": 2}, "- a\n- b", "* a\n* b\n* c"),
    ({"type": "bullets", "count": 2}, "Intro:\n- a\n  * nested b\n\n***\n- - -\n* * *\n*emphasis* here", "- a\n-b"),
    ({"type": "numbered_list", "count": 3}, "1. a\n2) b\n10. c", "1. a\n- b\n2.c"),
    ({"type": "start_phrase", "phrase": "In short,"}, "  In short, yes.", "Yes. In short."),
    ({"type": "start_phrase", "phrase": "In short,"}, "In short, yes.", "in short, yes."),  # case-sensitive by default
    ({"type": "start_phrase", "phrase": "In short,", "case_sensitive": False}, "in short, yes.", "Briefly, yes."),
    ({"type": "end_phrase", "phrase": "Hope this helps!"}, "Walk daily. Hope this helps!\n", "Hope this helps! Walk daily."),
    ({"type": "title"}, "<<Ode to Tea>>\nLeaves steep slowly.", "<Ode to Tea>\n<< >> and <<\n>>"),
    ({"type": "placeholders", "min_count": 2}, "Dear [name], see you at [address].", "Dear [name], see [the docs](http://x.org)."),
    ({"type": "postscript"}, "Thanks.\n\nP.S. See you soon.", "Thanks. P.S. inline is not a postscript."),
    ({"type": "postscript"}, "Thanks.\np.s. lowercase works", "Thanks.\nP.S."),  # a marker with nothing after it
    ({"type": "postscript", "marker": "P.P.S"}, "Hi.\nP.P.S one more thing", "Hi.\nP.S. one thing"),
    ({"type": "no_commas"}, "red green blue", "red, green"),
    ({"type": "no_commas"}, "赤 緑", "赤，緑"),  # fullwidth comma
    ({"type": "quotation"}, '"Hello there."', 'Hello "there"'),
    ({"type": "quotation"}, "“Hello there.”", '"'),
    ({"type": "highlights", "min_count": 2}, "This is *important* and **key**.", "* a bullet\n2*3*4 and *one*"),
]


@pytest.mark.parametrize("constraint, good, bad", CASES, ids=[f"{c['type']}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_constraint_satisfied_and_violated(constraint, good, bad):
    ok = check_constraints(good, constraint=constraint)
    assert ok.score == 1.0, ok
    assert ok.info == {"failed": [], "fraction": 1.0}
    no = check_constraints(bad, constraint=constraint)
    assert no.score == 0.0, no
    assert no.info["failed"] == [constraint["type"]]
    assert no.reason and no.reason.startswith(constraint["type"] + ":")


def test_every_type_has_cases():
    assert {c["type"] for c, _, _ in CASES} == set(CONSTRAINT_TYPES)
    synth_types = {"max_words", "keyword", "lowercase", "uppercase", "json", "bullets", "end_phrase", "start_phrase"}
    assert synth_types <= set(CONSTRAINT_TYPES)


def test_units_hand_counted():
    assert words("Hello, world — it's 3 p.m. *") == ["Hello,", "world", "it's", "3", "p.m."]
    assert len(sentences("One. Two? Three! Four")) == 4
    assert len(sentences("Line one\nLine two")) == 2
    assert len(sentences("日本語です。二つ目！")) == 2
    assert paragraphs("a\n\n\n\nb\n***\n\nc") == ["a", "b", "c"]


def test_counting_fields_bounds():
    text = "- a\n- b\n- c"
    assert check_constraints(text, constraint={"type": "bullets", "min_count": 2, "max_count": 3}).score == 1.0
    assert check_constraints(text, constraint={"type": "bullets", "max_count": 2}).score == 0.0
    v = check_constraints(text, constraint={"type": "bullets", "count": 4})
    assert "found 3 bullet points, expected exactly 4" in v.reason


def test_list_of_constraints_all_must_hold():
    both = [{"type": "lowercase"}, {"type": "max_words", "limit": 2}, {"type": "no_commas"}]
    v = check_constraints("hello there, friend", constraint=both)
    assert v.score == 0.0
    assert v.info["failed"] == ["max_words", "no_commas"]
    assert v.info["fraction"] == pytest.approx(1 / 3)
    assert "3 words, limit 2" in v.reason and "1 commas" in v.reason
    ok = check_constraints("hello there", constraint=both)
    assert ok.score == 1.0 and ok.info["fraction"] == 1.0


def test_constraint_as_json_string():
    assert check_constraints("one two", constraint=json.dumps({"type": "max_words", "limit": 2})).score == 1.0
    assert check_constraints("one two", constraint=json.dumps([{"type": "max_words", "limit": 1}])).score == 0.0


@pytest.mark.parametrize(
    "constraint, named",
    [
        ({"type": "haiku"}, "'haiku'"),
        ({"type": "max_words"}, "'limit'"),
        ({"type": "min_sentences", "limit": None}, "'limit'"),
        ({"type": "max_words", "limit": "ten"}, "'limit'"),
        ({"type": "max_words", "limit": -1}, "'limit'"),
        ({"type": "bullets"}, "'count'"),
        ({"type": "keyword"}, "'keyword'"),
        ({"type": "keyword", "keyword": ""}, "'keyword'"),
        ({"type": "forbidden_words", "words": []}, "'words'"),
        ({"type": "end_phrase"}, "'phrase'"),
        ({"type": "json", "keys": [1]}, "'keys'"),
        ({"limit": 3}, "'type'"),
        ([], "non-empty list"),
        ("not json", "not JSON"),
        ([{"type": "lowercase"}, "x"], "dict"),
        ([{"type": "max_words", "limit": 1}, {"type": "sonnet"}], "'sonnet'"),  # a malformed item is never masked by a failure
    ],
)
def test_malformed_constraint_is_undecided_with_the_field_named(constraint, named):
    v = check_constraints("Some text here.", constraint=constraint)
    assert v.score is None
    assert named in v.reason


def test_unknown_type_lists_known_types():
    v = check_constraints("x", constraint={"type": "haiku"})
    assert "unknown constraint type 'haiku'" in v.reason and "max_words" in v.reason


def test_integral_float_limit_from_json_is_accepted():
    assert check_constraints("a b", constraint={"type": "max_words", "limit": 2.0}).score == 1.0


# ---------------------------------------------------------------- agreement with the built-in suite


def _suite_constraint_records():
    recs = [r for split in (generate("test"), generate("train", 100)) for r in split if r.subset == "constraints"]
    assert len(recs) == 160
    return recs


def test_agrees_with_the_synth_suite():
    recs = _suite_constraint_records()
    for r in recs:
        c = r.columns["constraint"]
        assert check_constraints(r.chosen, constraint=c).score == 1.0, (r.id, c, r.chosen)
        assert check_constraints(r.rejected, constraint=c).score == 0.0, (r.id, c, r.rejected)


def test_agrees_with_the_synth_suite_through_the_rule():
    recs = _suite_constraint_records()
    rule = load_rule("constraints")
    prompts = [r.prompt for r in recs]
    cons = [r.columns["constraint"] for r in recs]
    assert rule(prompts, [r.chosen for r in recs], constraint=cons) == [1.0] * len(recs)
    out = rule.score(prompts, [r.rejected for r in recs], constraint=cons)
    assert out.scores == [0.0] * len(recs)
    assert out.extras["failed"] == [[c["type"]] for c in cons]


# ---------------------------------------------------------------- the rule: columns, threads, processes


def test_missing_constraint_column_names_it():
    with pytest.raises(MissingColumnError, match="'constraint'"):
        load_rule("constraints").score(["p"], ["c"])
    with pytest.raises(KeyError, match="'constraint'"):
        load_rule("constraints")(["p"], ["c"], answer=["x"])


def _batch():
    prompts, texts, cons = [], [], []
    for constraint, good, bad in CASES:
        for text in (good, bad):
            prompts.append("p")
            texts.append(text)
            cons.append(constraint)
    cons[0] = {"type": "haiku"}  # an undecided sample in the batch
    return prompts, texts, cons


def test_thread_safe():
    prompts, texts, cons = _batch()
    rule = load_rule("constraints")
    sequential = rule.score(prompts, texts, constraint=cons)
    assert sequential.scores[0] is None and "haiku" in sequential.extras["reason"][0]
    with ThreadPoolExecutor(max_workers=8) as pool:
        singles = list(pool.map(lambda i: rule.score([prompts[i]], [texts[i]], constraint=[cons[i]]), range(len(texts))))
        batches = list(pool.map(lambda _: rule.score(prompts, texts, constraint=cons), range(4)))
    assert [s.scores[0] for s in singles] == sequential.scores
    assert [s.extras.get("reason", [None])[0] for s in singles] == sequential.extras["reason"]
    assert all(b == sequential for b in batches)


def test_process_pool_matches_sequential():
    prompts, texts, cons = _batch()
    sequential = load_rule("constraints").score(prompts, texts, constraint=cons)
    pooled = load_rule("constraints", workers=2, chunk_size=8).score(prompts, texts, constraint=cons)
    assert pooled == sequential
