"""Step data: splitting, readers (ProcessBench, PRM800K, Math-Shepherd), errors naming file/line/field,
the built-in arith step data and GSM8K error injection."""
from __future__ import annotations

import json
import random

import pytest

from rewardkit.data.formats import DataFormatError, load_dataset
from rewardkit.data.steps import (
    arith_steps, dev_test_split, gsm8k_error_steps, gsm8k_steps, inject_error, load_steps, split_steps,
)


def _write(tmp_path, rows, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_split_steps_drops_blank_pieces():
    assert split_steps("a\n\n b \nc\n") == ["a", "b", "c"]
    assert split_steps("x. y. z", ". ") == ["x", "y", "z"]
    with pytest.raises(ValueError):
        split_steps("a", "")


def test_processbench_rows_with_encoded_strings_and_derived_labels(tmp_path):
    path = _write(tmp_path, [
        {"id": "a", "question": "q1", "steps": json.dumps(["s1", "s2", "s3"]), "labels": json.dumps([1, 0, None]), "classification": "circular"},
        {"id": "b", "question": "q2", "steps": ["t1", "t2"], "first_error_step": -1},
        {"id": "c", "prompt": "q3", "steps": ["u1", "u2", "u3"], "first_error_step": 1},
    ])
    data = load_dataset(path)  # auto-detected through the shared reader
    assert data.kind == "steps"
    a, b, c = data.records
    assert a.labels == [1.0, 0.0, None] and a.first_error_step == 1 and a.subset == "circular"
    assert b.labels == [1.0, 1.0] and b.first_error_step == -1
    assert c.labels == [1.0, 0.0, None]


def test_bad_rows_name_file_line_and_field(tmp_path):
    path = _write(tmp_path, [
        {"question": "q", "steps": ["a"], "labels": [1]},
        {"question": "q", "steps": ["a", "b"], "labels": [1, 2]},
    ])
    with pytest.raises(DataFormatError) as err:
        load_steps(path)
    assert "d.jsonl:line 2" in str(err.value) and "labels[1]" in str(err.value)
    path = _write(tmp_path, [{"question": "q", "steps": ["a"], "first_error_step": 3}], "e.jsonl")
    with pytest.raises(DataFormatError, match="line 1: field 'first_error_step'"):
        load_steps(path)

    path = _write(tmp_path, [{"question": "q", "steps": ["a"], "first_error_step": 3}, {"question": "q", "steps": ["a"], "first_error_step": 0}], "f.jsonl")
    data = load_steps(path, skip_invalid=True)
    assert len(data) == 1 and len(data.skipped) == 1 and "f.jsonl:line 1" in data.skipped[0]


def test_prm800k_and_math_shepherd_layouts(tmp_path):
    prm = {"question": {"problem": "What is 1+1?"}, "label": {"steps": [
        {"completions": [{"text": "1+1=2", "rating": 1}], "chosen_completion": 0},
        {"completions": [{"text": "bad", "rating": -1}, {"text": "ok", "rating": 0}], "chosen_completion": None},
    ]}}
    ms = {"input": "Tom has 2 apples. Step 1: 2+1=3 ки\nStep 2: So 4 ки", "label": "Tom has 2 apples. Step 1: 2+1=3 +\nStep 2: So 4 -"}
    a = load_steps(_write(tmp_path, [prm], "p.jsonl")).records[0]
    assert a.prompt == "What is 1+1?" and a.steps == ["1+1=2", "bad"] and a.labels == [1.0, 0.0] and a.first_error_step == 1
    b = load_steps(_write(tmp_path, [ms], "m.jsonl")).records[0]
    assert b.prompt == "Tom has 2 apples." and b.steps == ["Step 1: 2+1=3", "Step 2: So 4"] and b.labels == [1.0, 0.0]
    broken = dict(ms, label=ms["label"].replace("+", "?"))
    with pytest.raises(DataFormatError, match="field 'label'"):
        load_steps(_write(tmp_path, [broken], "n.jsonl"))


def test_arith_steps_match_the_suite_labels():
    data = arith_steps("test", 10)
    assert len(data) == 20
    good, bad = data.records[0], data.records[1]
    assert good.first_error_step == -1 and all(x == 1.0 for x in good.labels)
    j = bad.first_error_step
    assert bad.labels[j] == 0.0 and all(x == 1.0 for x in bad.labels[:j]) and all(x is None for x in bad.labels[j + 1:])
    assert bad.steps[:j] == good.steps[:j] and bad.steps[j] != good.steps[j]


def test_gsm8k_error_injection_changes_exactly_one_result(tmp_path):
    steps, answer = gsm8k_steps("He has 3+4 = <<3+4=7>>7 pens.\nThen 7*2 = <<7*2=14>>14.\n#### 14")
    assert steps == ["He has 3+4 = 7 pens.", "Then 7*2 = 14.", "The answer is 14."] and answer == "14"
    for seed in range(20):
        out = inject_error(steps, random.Random(seed))
        assert out is not None
        new, j = out
        assert [k for k in range(3) if new[k] != steps[k]] == [j] and j in (0, 1)
    assert inject_error(["no numbers here"], random.Random(0)) is None
    path = _write(tmp_path, [{"question": "q", "solution": "a = <<1+1=2>>2\n#### 2"}])
    data = gsm8k_error_steps(path)
    assert [r.first_error_step for r in data.records] == [-1, 0]


def test_dev_test_split_keeps_questions_together():
    data = arith_steps("test", 30)
    dev, test = dev_test_split(data.records, 0.3, seed=0)
    assert dev and test and len(dev) + len(test) == len(data)
    assert not {r.group for r in dev} & {r.group for r in test}
