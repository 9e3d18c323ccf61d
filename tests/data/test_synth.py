"""The built-in generated suite (rewardkit.data.synth)."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from rewardkit.data import synth
from rewardkit.data.formats import load_dataset
from rewardkit.data.synth import generate, record_to_row, write_suite

CLAIM = re.compile(r"(-?\d+(?:\.\d+)?) ([-+*/]) (-?\d+(?:\.\d+)?) = (-?\d+(?:\.\d+)?)")


@pytest.fixture(scope="module")
def test_split():
    return generate("test")


@pytest.fixture(scope="module")
def train_split():
    return generate("train", n_per_subset=50)


def by_subset(records, subset):
    out = [r for r in records if r.subset == subset]
    assert out, f"no {subset} records"
    return out


# ---------------------------------------------------------------- determinism and splits


def test_generate_is_deterministic():
    a = generate("test", n_per_subset=20, seed=3)
    b = generate("test", n_per_subset=20, seed=3)
    assert a == b
    assert [record_to_row(r) for r in a] == [record_to_row(r) for r in b]


def test_different_seed_gives_different_records():
    a = generate("test", n_per_subset=20, seed=0)
    b = generate("test", n_per_subset=20, seed=1)
    rows_a = [json.dumps(record_to_row(r), sort_keys=True) for r in a]
    rows_b = [json.dumps(record_to_row(r), sort_keys=True) for r in b]
    assert rows_a != rows_b
    for subset in ("arith", "constraints", "length-trap"):
        pa = [r.prompt + r.chosen for r in a if r.subset == subset]
        pb = [r.prompt + r.chosen for r in b if r.subset == subset]
        assert pa != pb, subset


def test_record_ids_and_split_column(test_split):
    ids = [r.id for r in test_split]
    assert len(ids) == len(set(ids))
    for subset in synth.SUBSETS:
        recs = [r for r in test_split if r.subset == subset]
        assert [r.id for r in recs] == [f"suite-{subset}-test-{i}" for i in range(len(recs))]
    assert {r.columns["split"] for r in test_split} == {"test"}


def test_no_duplicate_pairs_within_split(test_split):
    keys = [(r.subset, r.prompt, r.chosen) for r in test_split]
    assert len(keys) == len(set(keys))


def test_splits_share_no_group_and_no_prompt(test_split):
    train = generate("train")  # the full default train split
    for subset in synth.SUBSETS:
        tr = [r for r in train if r.subset == subset]
        te = [r for r in test_split if r.subset == subset]
        assert tr and te, subset
        assert not {r.columns["group"] for r in tr} & {r.columns["group"] for r in te}, subset
        assert not {r.prompt for r in tr} & {r.prompt for r in te}, subset
    assert not {r.prompt for r in train} & {r.prompt for r in test_split}


def test_split_sizes(test_split, train_split):
    test_counts = Counter(r.subset for r in test_split)
    for subset in ("arith", "constraints", "length-trap"):
        assert test_counts[subset] == synth.DEFAULT_SIZES["test"] == 60, subset
    assert 0 < test_counts["refusal"] <= 60
    train_counts = Counter(r.subset for r in train_split)
    for subset in ("arith", "constraints", "length-trap"):
        assert train_counts[subset] == 50, subset
    assert 0 < train_counts["refusal"] <= 50
    assert {r.columns["split"] for r in train_split} == {"train"}


def test_subset_selection_and_bad_arguments():
    recs = generate("test", n_per_subset=4, subsets=("refusal", "arith"))
    assert [r.subset for r in recs] == ["refusal"] * 4 + ["arith"] * 4
    assert generate("test", n_per_subset=0) == []
    with pytest.raises(ValueError, match="split"):
        generate("dev")
    with pytest.raises(ValueError, match="unknown suite subset"):
        generate("test", subsets=("arith", "poetry"))


# ---------------------------------------------------------------- arith


def _claims(step: str):
    return CLAIM.findall(step)


def _true_value(a: str, op: str, b: str) -> float:
    x, y = float(a), float(b)
    return {"+": x + y, "-": x - y, "*": x * y, "/": x / y}[op]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_arith_records(seed):
    recs = generate("test", seed=seed, subsets=("arith",))
    assert len(recs) == 60
    errors_at = Counter()
    for r in recs:
        cols = r.columns
        chosen_steps, rejected_steps = cols["chosen_steps"], cols["rejected_steps"]
        k = cols["first_error_step"]
        errors_at[k] += 1
        answer = cols["answer"]
        assert r.chosen == "\n".join(chosen_steps)
        assert r.rejected == "\n".join(rejected_steps)
        assert r.chosen.splitlines()[-1] == f"The answer is {answer}."
        assert re.fullmatch(r"-?\d+", answer), answer
        final_rejected = rejected_steps[-1]
        assert final_rejected.startswith("The answer is ")
        assert final_rejected.removeprefix("The answer is ").rstrip(".") != answer
        assert len(chosen_steps) == len(rejected_steps) in (4, 5)
        assert 0 <= k < len(rejected_steps) - 1  # never the "The answer is" line
        assert chosen_steps[:k] == rejected_steps[:k]
        assert chosen_steps[k] != rejected_steps[k]
        labels = cols["rejected_labels"]
        assert len(labels) == len(rejected_steps)
        assert labels[:k] == [1] * k
        assert labels[k] == 0
        assert all(v is None for v in labels[k + 1:])
        # every calculation in the correct solution is right
        for step in chosen_steps[:-1]:
            claims = _claims(step)
            assert len(claims) == 1, step
            a, op, b, c = claims[0]
            assert _true_value(a, op, b) == float(c), step
        assert float(_claims(chosen_steps[-2])[0][3]) == float(answer)
        # the injected error is a wrong calculation
        (a, op, b, c), = _claims(rejected_steps[k])
        assert _true_value(a, op, b) != float(c), rejected_steps[k]
        assert r.prompt.endswith("?")
    assert len(errors_at) >= 3  # errors are injected at different steps


# ---------------------------------------------------------------- constraints


def _word_count(text: str) -> int:
    return len(text.split())


def satisfies(text: str, constraint: dict) -> bool:
    kind = constraint["type"]
    if kind == "max_words":
        return _word_count(text) <= constraint["limit"]
    if kind == "keyword":
        return re.search(rf"\b{re.escape(constraint['keyword'])}\b", text, re.IGNORECASE) is not None
    if kind == "lowercase":
        return any(c.isalpha() for c in text) and text == text.lower()
    if kind == "uppercase":
        return any(c.isalpha() for c in text) and text == text.upper()
    if kind == "json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            return False
        return isinstance(obj, dict) and set(obj) == set(constraint["keys"]) and all(isinstance(v, str) and v for v in obj.values())
    if kind == "bullets":
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return all(ln.startswith("- ") for ln in lines) and len(lines) == constraint["count"]
    if kind == "end_phrase":
        return text.rstrip().endswith(constraint["phrase"])
    if kind == "start_phrase":
        return text.lstrip().startswith(constraint["phrase"])
    raise AssertionError(f"unknown constraint type {kind!r}")


CONSTRAINT_TYPES = {"max_words", "keyword", "lowercase", "uppercase", "json", "bullets", "end_phrase", "start_phrase"}


def test_constraint_checkers_sanity():
    assert satisfies("one two three", {"type": "max_words", "limit": 3})
    assert not satisfies("one two three four", {"type": "max_words", "limit": 3})
    assert satisfies("A Simple idea.", {"type": "keyword", "keyword": "simple"})
    assert not satisfies("Simplest idea.", {"type": "keyword", "keyword": "simple"})
    assert not satisfies("Hello", {"type": "lowercase"}) and satisfies("hello.", {"type": "lowercase"})
    assert not satisfies('{"topic": "x"}', {"type": "json", "keys": ["topic", "summary"]})
    assert not satisfies("- a\n- b\n- c", {"type": "bullets", "count": 2})
    assert satisfies("- a\n- b", {"type": "bullets", "count": 2})


def test_constraints_chosen_satisfies_rejected_violates(test_split, train_split):
    for split_records in (test_split, train_split):
        recs = by_subset(split_records, "constraints")
        for r in recs:
            constraint = r.columns["constraint"]
            assert constraint["type"] in CONSTRAINT_TYPES
            assert satisfies(r.chosen, constraint), (r.id, constraint, r.chosen)
            assert not satisfies(r.rejected, constraint), (r.id, constraint, r.rejected)
            assert r.columns["group"].endswith("|" + constraint["type"])
    assert {r.columns["constraint"]["type"] for r in by_subset(test_split, "constraints")} == CONSTRAINT_TYPES


def test_constraints_hold_for_other_seeds():
    """Regression: a keyword already present in the topic sentences used to leave rejected compliant."""
    for seed in range(1, 25):
        for r in generate("test", seed=seed, subsets=("constraints",)):
            constraint = r.columns["constraint"]
            assert satisfies(r.chosen, constraint), (seed, r.id)
            assert not satisfies(r.rejected, constraint), (seed, r.id, constraint, r.rejected)


# ---------------------------------------------------------------- length-trap and refusal


def test_length_trap_chosen_is_shorter(test_split, train_split):
    for records in (test_split, train_split):
        for r in by_subset(records, "length-trap"):
            assert _word_count(r.chosen) < _word_count(r.rejected), r.id
            assert r.columns["style"] in ("long-wrong", "long-evasive")


def test_length_trap_chosen_is_correct(test_split):
    for r in by_subset(test_split, "length-trap"):
        m = re.fullmatch(r"What is (\d+) times (\d+)\?", r.prompt)
        if m:
            a, b = int(m[1]), int(m[2])
            assert r.chosen == f"{a} times {b} is {a * b}."
            if r.columns["style"] == "long-wrong":
                assert f"{a} times {b} is {a * b}." not in r.rejected
        m = re.fullmatch(r"How many minutes are in (\d+) hours\?", r.prompt)
        if m:
            assert r.chosen == f"There are {int(m[1]) * 60} minutes in {m[1]} hours."


def test_refusal_categories(test_split, train_split):
    for records in (test_split, train_split):
        recs = by_subset(records, "refusal")
        cats = [r.columns["category"] for r in recs]
        assert set(cats) == {"should-refuse", "should-comply"}
        for r in recs:
            if r.columns["category"] == "should-comply":
                assert r.rejected.startswith("I'm sorry, but I can't help")
                assert not r.chosen.startswith("I'm sorry")
            else:
                assert r.chosen.startswith("I can't help")
                assert r.rejected.startswith("Sure, here is how to")


# ---------------------------------------------------------------- write_suite


def test_write_suite_round_trip(tmp_path):
    sizes = {"train": 12, "test": 8}
    paths = write_suite(tmp_path / "suite", seed=5, sizes=sizes)
    assert [p.name for p in paths] == ["train.jsonl", "test.jsonl"]
    for path, split in zip(paths, ("train", "test")):
        assert path.parent == tmp_path / "suite"
        expected = generate(split, sizes[split], seed=5)
        data = load_dataset(path)
        assert data.format == "pairwise" and data.kind == "pairs"
        assert data.records == expected
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == [record_to_row(r) for r in expected]
    assert not list((tmp_path / "suite").glob("*.tmp"))


def test_write_suite_default_sizes_round_trip_and_is_byte_identical(tmp_path):
    first = write_suite(tmp_path / "a")
    before = [p.read_bytes() for p in first]
    again = write_suite(tmp_path / "a")
    other = write_suite(tmp_path / "b")
    assert [p.read_bytes() for p in again] == before
    assert [p.read_bytes() for p in other] == before
    test_path = tmp_path / "a" / "test.jsonl"
    assert load_dataset(test_path).records == generate("test")
    train_path = tmp_path / "a" / "train.jsonl"
    assert load_dataset(train_path).records == generate("train")
