"""`rewardkit eval` on verifier data: agreement, false-positive and false-negative rates against
labelled verdicts (an `expected` column), undecided samples apart."""
from __future__ import annotations

import json

import pytest

from rewardkit.cli.main import main
from rewardkit.evals.verdicts import evaluate_verdicts, expected_label
from rewardkit.rewards.rules import load_rule
from rewardkit.types import SampleRecord


def rows() -> list[dict]:
    return [
        {"id": "a", "prompt": "2+2?", "completion": "The answer is \\boxed{4}", "answer": "4", "expected": 1, "subset": "easy"},
        {"id": "b", "prompt": "2+2?", "completion": "The answer is \\boxed{5}", "answer": "4", "expected": 0, "subset": "easy"},
        {"id": "c", "prompt": "2+3?", "completion": "The answer is \\boxed{5}", "answer": "5", "expected": "incorrect", "subset": "mislabel"},
        {"id": "d", "prompt": "x?", "completion": "I don't know", "answer": "3", "expected": True, "subset": "mislabel"},
        {"id": "e", "prompt": "x?", "completion": "\\boxed{3}", "answer": "3", "subset": "mislabel"},  # no label: left out
    ]


def test_rates_count_false_positives_negatives_and_undecided_apart():
    records = [SampleRecord(r["id"], r["prompt"], r["completion"], r["subset"], {k: v for k, v in r.items() if k in ("answer", "expected")}) for r in rows()]
    result, scored = evaluate_verdicts(load_rule("math"), records, progress=False)
    o = result["overall"]
    assert (o["n"], o["decided"], o["undecided"], result["unlabelled"]) == (4, 3, 1, 1)
    assert (o["false_positives"], o["false_negatives"]) == (1, 0)  # "c" passes but is labelled incorrect
    assert o["agreement"] == pytest.approx(2 / 3) and o["false_positive_rate"] == pytest.approx(1 / 2)
    assert result["subsets"]["easy"]["agreement"] == 1.0 and result["subsets"]["mislabel"]["undecided"] == 1
    assert [r["verdict"] for r in scored] == [True, False, True, None]


def test_cli_writes_results_and_a_table(tmp_path, capsys):
    data = tmp_path / "verdicts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    assert main(["eval", "--reward", "rule:math", "--data", str(data), "--out", str(tmp_path / "out"), "--bootstrap", "50"]) == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["overall"]["false_positives"] == 1 and result["threshold"] == 0.5
    assert "FP%" in capsys.readouterr().out
    scored = [json.loads(line) for line in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    assert len(scored) == 4 and scored[0]["agrees"] is True


def test_labels_are_read_strictly():
    assert [expected_label(v) for v in (1, 0, True, "correct", "Incorrect", None)] == [True, False, True, True, False, None]
    with pytest.raises(ValueError, match="expected must be"):
        expected_label(0.7)
