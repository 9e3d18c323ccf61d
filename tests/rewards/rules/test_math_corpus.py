"""rule:math on the hand-written verdict corpus (math_corpus.py): every case must give its expected
verdict; the false-positive classes must never score 1."""
from __future__ import annotations

from collections import Counter

import pytest

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
        if r["class"] in FALSE_POSITIVE_CLASSES and r["expected"] == 1.0:
            continue  # controls: the same answer written the way of the gold
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
