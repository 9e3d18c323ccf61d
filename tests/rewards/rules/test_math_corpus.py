"""rule:math on the hand-written verdict corpus (math_corpus.py): every case must give its expected
verdict; the false-positive classes must never score 1."""
from __future__ import annotations

from collections import Counter

import pytest

from rewardkit.rewards.rules import load_rule
from rewardkit.rewards.rules.math import check_math

from math_corpus import CORPUS, FALSE_POSITIVE_CLASSES, as_records

RECORDS = as_records()


def test_corpus_size_and_shape():
    assert len(RECORDS) >= 300
    per_class = Counter(r["class"] for r in RECORDS)
    assert min(per_class.values()) >= 10, per_class
    assert set(FALSE_POSITIVE_CLASSES) <= set(CORPUS)
    for r in RECORDS:
        assert r["expected"] in (1.0, 0.0, None) and r["why"], r
    # the false-positive classes are mostly hacks; their 1.0 cases are controls (the same answer)
    hacks = [r for r in RECORDS if r["class"] in FALSE_POSITIVE_CLASSES and r["expected"] != 1.0]
    assert len(hacks) >= 40
    assert len({(r["completion"], r["gold"]) for r in RECORDS}) == len(RECORDS), "duplicate cases"


@pytest.mark.parametrize("record", RECORDS, ids=[f"{r['class']}-{i:03d}" for i, r in enumerate(RECORDS)])
def test_corpus_case(record):
    verdict = check_math(record["completion"], answer=record["gold"])
    assert verdict.score == record["expected"], (record, verdict)
    if verdict.score is None:
        assert verdict.reason, "an undecided verdict must say why"


def test_false_positive_classes_never_reward_a_different_answer():
    """The reward-hack classes: a case expected 0 or None must not score 1 (checked above case by
    case; this names the hacks in one failure message)."""
    hacks = []
    for r in RECORDS:
        if r["class"] in FALSE_POSITIVE_CLASSES and r["expected"] != 1.0:
            if check_math(r["completion"], answer=r["gold"]).score == 1.0:
                hacks.append((r["completion"], r["gold"]))
    assert not hacks, hacks


@pytest.mark.parametrize("percent,expected", [("unit", [1.0, 0.0, 0.0]), ("value", [0.0, 1.0, 1.0]), ("either", [1.0, 1.0, 1.0])])
def test_percent_policy_option(percent, expected):
    """percent='unit' (the default) drops % as a unit; 'value' reads 50% as 1/2; 'either' takes both."""
    reward = load_rule("math", percent=percent)
    out = reward.score(["q"] * 3, [r"\boxed{50}", r"\boxed{0.5}", r"\boxed{50\%}"], answer=[r"50\%", r"50\%", "0.5"])
    assert out.scores == expected


def test_bad_percent_policy_is_an_error():
    with pytest.raises(ValueError, match="percent"):
        check_math(r"\boxed{1}", answer="1", percent="ratio")
